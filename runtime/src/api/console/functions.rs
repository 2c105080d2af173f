//! Functions: the overview of every service's functions, creating one
//! from an uploaded `.wasm` (with FC's "task function" preset), a
//! function's page (its tasks, async policy, instances, triggers,
//! versions and aliases), and the forms that change them.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Extension, Multipart, Path, RawQuery, State};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::task_list::{ListParams, TaskListView};
use super::views::{self, Chrome, function_href};
use super::{PageError, PageResult, Viewer, render, see_other};
use crate::api::SharedState;
use crate::api::fc::async_config::put_policy;
use crate::engine::GuestKind;
use crate::registry::{ConfigTable, Fields, ListQuery};
use crate::scheduler::AsyncPolicy;
use crate::tasks::TaskState;

/// One function in the overview.
struct FunctionLine {
    service: String,
    name: String,
    href: String,
    kind: &'static str,
    task_mode: bool,
    /// Counts by state, only the states it has tasks in.
    counts: Vec<(views::Badge, i64)>,
    provisioned_target: u64,
    provisioned_current: u64,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    functions: Vec<FunctionLine>,
    totals: Vec<(views::Badge, i64)>,
}

/// Every service's functions with their task counts, and the totals.
pub async fn overview(State(app): State<SharedState>, Extension(viewer): Extension<Viewer>) -> PageResult {
    let counts = app.scheduler.store().task_counts_by_function().await?;
    let mut by_function: HashMap<(String, String), Vec<(TaskState, i64)>> = HashMap::new();
    let mut totals: HashMap<TaskState, i64> = HashMap::new();
    for (service, function, state, n) in counts {
        by_function.entry((service, function)).or_default().push((state, n));
        *totals.entry(state).or_default() += n;
    }
    let mut functions = Vec::new();
    for (service, name) in all_functions(&app)? {
        let Ok(entry) = app.registry.get_function(&service, None, &name) else {
            continue;
        };
        let (target, current) = provisioned(&app, &service, &name);
        let mut counts = by_function.remove(&(service.clone(), name.clone())).unwrap_or_default();
        counts.sort_by_key(|(s, _)| state_order(*s));
        functions.push(FunctionLine {
            href: function_href(&service, &name),
            kind: entry.spec.kind.as_str(),
            task_mode: app.scheduler.policy(&service, &name, "LATEST").stateful,
            counts: counts.into_iter().map(|(s, n)| (views::badge(s), n)).collect(),
            provisioned_target: target,
            provisioned_current: current,
            service,
            name,
        });
    }
    let mut totals: Vec<(TaskState, i64)> = totals.into_iter().collect();
    totals.sort_by_key(|(s, _)| state_order(*s));
    render(&OverviewPage {
        chrome: Chrome::new(&viewer, "functions", "Functions"),
        functions,
        totals: totals.into_iter().map(|(s, n)| (views::badge(s), n)).collect(),
    })
}

fn state_order(s: TaskState) -> usize {
    TaskState::ALL.iter().position(|x| *x == s).unwrap_or(usize::MAX)
}

/// (service, function) for every function of every service, sorted.
fn all_functions(app: &SharedState) -> Result<Vec<(String, String)>, PageError> {
    let everything = ListQuery {
        limit: Some(1000),
        ..Default::default()
    };
    let (services, _) = app.registry.list_services(&everything)?;
    let mut out = Vec::new();
    for s in services {
        let Some(service) = s.get("serviceName").and_then(Value::as_str) else {
            continue;
        };
        let (functions, _) = app.registry.list_functions(service, None, &everything)?;
        for f in functions {
            if let Some(name) = f.get("functionName").and_then(Value::as_str) {
                out.push((service.to_string(), name.to_string()));
            }
        }
    }
    Ok(out)
}

/// Provisioned (target, current) summed over the function's qualifiers.
fn provisioned(app: &SharedState, service: &str, function: &str) -> (u64, u64) {
    app.registry
        .list_function_configs(ConfigTable::Provision, Some(service), Some(function), None)
        .into_iter()
        .fold((0, 0), |(t, c), (_, _, q, doc)| {
            let target = doc.get("target").and_then(Value::as_u64).unwrap_or(0);
            let current = app
                .registry
                .resolve(service, Some(&q), function)
                .map(|r| app.pool.provisioned(&r).0)
                .unwrap_or(0);
            (t + target, c + current)
        })
}

#[derive(Template)]
#[template(path = "console/new_function.html")]
struct NewFunctionPage {
    chrome: Chrome,
    services: Vec<String>,
}

pub async fn new_form(State(app): State<SharedState>, Extension(viewer): Extension<Viewer>) -> PageResult {
    let (services, _) = app.registry.list_services(&ListQuery {
        limit: Some(1000),
        ..Default::default()
    })?;
    render(&NewFunctionPage {
        chrome: Chrome::new(&viewer, "functions", "Create function"),
        services: services
            .iter()
            .filter_map(|s| s.get("serviceName").and_then(Value::as_str).map(str::to_string))
            .collect(),
    })
}

/// The create form's fields, as posted.
#[derive(Default)]
struct CreateForm {
    service: String,
    name: String,
    timeout: String,
    memory: String,
    env: String,
    task_preset: bool,
    code: Vec<u8>,
}

async fn read_create_form(mut form: Multipart) -> Result<CreateForm, PageError> {
    let mut out = CreateForm::default();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| PageError::invalid(format!("cannot read the form: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| PageError::invalid(format!("cannot read the form: {e}")))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "service" => out.service = text(),
            "name" => out.name = text(),
            "timeout" => out.timeout = text(),
            "memory" => out.memory = text(),
            "env" => out.env = text(),
            "task_preset" => out.task_preset = true,
            "code" => out.code = bytes.to_vec(),
            _ => {}
        }
    }
    Ok(out)
}

/// `KEY=value` lines, as the form's environment box holds them.
fn env_lines(text: &str) -> Result<Map<String, Value>, PageError> {
    let mut env = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| PageError::invalid(format!("environment line '{line}' is not KEY=value")))?;
        env.insert(k.trim().to_string(), json!(v.trim()));
    }
    Ok(env)
}

fn number(text: &str, what: &str) -> Result<Option<i64>, PageError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| PageError::invalid(format!("{what} must be a whole number, got '{text}'")))
}

/// Creates a function (and its service, when new) from the upload form,
/// through the registry's CreateFunction; the task preset then turns task
/// mode on through PutFunctionAsyncInvokeConfig's rules, as FC's does.
pub async fn create(State(app): State<SharedState>, form: Multipart) -> PageResult {
    let form = read_create_form(form).await?;
    if form.code.is_empty() {
        return Err(PageError::invalid(
            "choose a .wasm file (or a zip holding one) to upload",
        ));
    }
    if app.registry.service_exists(&form.service).is_err() {
        let body = Fields::from_map(Map::from_iter([("serviceName".into(), json!(form.service))]));
        app.registry.create_service(&body).await?;
    }
    let mut body = Map::new();
    body.insert("functionName".into(), json!(form.name));
    body.insert("runtime".into(), json!("wasm"));
    body.insert(
        "code".into(),
        json!({ "zipFile": base64::engine::general_purpose::STANDARD.encode(&form.code) }),
    );
    if let Some(t) = number(&form.timeout, "timeout")? {
        body.insert("timeout".into(), json!(t));
    }
    if let Some(m) = number(&form.memory, "memory")? {
        body.insert("memorySize".into(), json!(m));
    }
    body.insert("environmentVariables".into(), Value::Object(env_lines(&form.env)?));
    app.registry
        .create_function(&form.service, &Fields::from_map(body))
        .await?;
    if form.task_preset {
        let policy = Fields::from_map(Map::from_iter([("statefulInvocation".into(), json!(true))]));
        put_policy(&app, &form.service, &form.name, "LATEST", &policy).await?;
    }
    Ok(see_other(&function_href(&form.service, &form.name)))
}

/// A line of the function page's instances table.
struct InstanceLine {
    id: String,
    version: String,
    start: &'static str,
    busy: bool,
    current: String,
    current_href: Option<String>,
    memory: String,
    age: String,
    invocations: u64,
    recycling: bool,
}

/// A trigger, version or alias, as listed.
struct NamedLine {
    name: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/function.html")]
struct FunctionPage {
    chrome: Chrome,
    service: String,
    name: String,
    /// What FC 3.0 clients call it (`name`, or `service$name`).
    fc3_name: String,
    href: String,
    kind: &'static str,
    is_http: bool,
    memory_mb: u64,
    timeout_s: u64,
    last_modified: String,
    policy: AsyncPolicy,
    provisioned_target: u64,
    provisioned_current: u64,
    tasks: TaskListView,
    instances: Vec<InstanceLine>,
    triggers: Vec<NamedLine>,
    versions: Vec<NamedLine>,
    aliases: Vec<NamedLine>,
}

pub async fn page(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    Path((service, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = ListParams::parse(raw.as_deref())?;
    let entry = app.registry.get_function(&service, None, &name)?;
    let href = function_href(&service, &name);
    let tasks = super::task_list::list_view(&app, Some((&service, &name)), &href, &params).await?;
    let (provisioned_target, provisioned_current) = provisioned(&app, &service, &name);
    render(&FunctionPage {
        chrome: Chrome::new(&viewer, "functions", format!("{service}/{name}")),
        fc3_name: crate::api::fc3::fc3_name(&service, &name),
        kind: entry.spec.kind.as_str(),
        is_http: entry.spec.kind == GuestKind::HttpComponent,
        memory_mb: entry.spec.memory_mb,
        timeout_s: entry.spec.timeout_s,
        last_modified: entry.spec.last_modified.clone(),
        policy: app.scheduler.policy(&service, &name, "LATEST"),
        provisioned_target,
        provisioned_current,
        tasks,
        instances: instance_lines(&app, &service, &name),
        triggers: named_lines(
            app.registry.list_triggers(&service, &name, &ListQuery::default())?.0,
            "triggerName",
            "triggerType",
        ),
        versions: named_lines(
            app.registry.list_versions(&service, &ListQuery::default(), None)?.0,
            "versionId",
            "description",
        ),
        aliases: named_lines(
            app.registry.list_aliases(&service, &ListQuery::default())?.0,
            "aliasName",
            "versionId",
        ),
        href,
        service,
        name,
    })
}

fn named_lines(docs: Vec<Map<String, Value>>, name: &str, detail: &str) -> Vec<NamedLine> {
    let text = views::json_text;
    docs.iter()
        .map(|d| NamedLine {
            name: text(d.get(name)),
            detail: text(d.get(detail)),
        })
        .collect()
}

fn instance_lines(app: &SharedState, service: &str, function: &str) -> Vec<InstanceLine> {
    app.pool
        .instances(service, function)
        .into_iter()
        .map(|i| {
            let current_href =
                (i.busy && !i.current.is_empty()).then(|| views::task_href(service, function, &i.current));
            InstanceLine {
                version: i.version.map_or("LATEST".into(), |v| v.to_string()),
                start: if i.provisioned { "provisioned" } else { "on demand" },
                busy: i.busy,
                current: i.current,
                current_href,
                memory: format!(
                    "{:.1} / {} MiB",
                    i.memory_bytes as f64 / (1 << 20) as f64,
                    i.memory_limit_bytes >> 20
                ),
                age: views::duration(i.age.as_millis() as i64),
                invocations: i.invocations,
                recycling: i.recycling,
                id: i.instance_id,
            }
        })
        .collect()
}

/// The async policy form: task mode, retries, max event age, destinations.
#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    task_mode: Option<String>,
    retries: String,
    #[serde(default)]
    max_age: String,
    #[serde(default)]
    on_success: String,
    #[serde(default)]
    on_failure: String,
}

pub async fn save_policy(
    State(app): State<SharedState>,
    Path((service, name)): Path<(String, String)>,
    axum::extract::Form(form): axum::extract::Form<PolicyForm>,
) -> PageResult {
    let mut body = Map::new();
    body.insert("statefulInvocation".into(), json!(form.task_mode.is_some()));
    if let Some(r) = number(form.retries.trim(), "retries")? {
        body.insert("maxAsyncRetryAttempts".into(), json!(r));
    }
    if let Some(a) = number(form.max_age.trim(), "max event age")? {
        body.insert("maxAsyncEventAgeInSeconds".into(), json!(a));
    }
    let mut destinations = Map::new();
    for (which, arn) in [("onSuccess", &form.on_success), ("onFailure", &form.on_failure)] {
        if !arn.trim().is_empty() {
            destinations.insert(which.into(), json!({ "destination": arn.trim() }));
        }
    }
    body.insert("destinationConfig".into(), Value::Object(destinations));
    put_policy(&app, &service, &name, "LATEST", &Fields::from_map(body)).await?;
    Ok(see_other(&format!("{}#policy", function_href(&service, &name))))
}

pub async fn recycle(
    State(app): State<SharedState>,
    Path((service, name, instance)): Path<(String, String, String)>,
) -> PageResult {
    if !app.pool.recycle(&service, &name, &instance) {
        return Err(PageError::not_found(
            "InstanceNotFound",
            format!("no live instance '{instance}' of {service}/{name}"),
        ));
    }
    Ok(see_other(&format!("{}#instances", function_href(&service, &name))))
}
