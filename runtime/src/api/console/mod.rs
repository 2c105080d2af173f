//! The web console at `/console/`: server-rendered pages over the same core
//! calls as the FC and Durable APIs (registry, scheduler, pool, durable),
//! so the rules live once.
//!
//! Pages are askama templates (`runtime/templates/console/`), compiled into
//! the binary with the CSS and JavaScript they use; nothing loads from
//! elsewhere. Every form is a plain POST that answers with a redirect (the
//! page works without JavaScript); `console.js` adds the live refresh
//! (server-sent events from the store's task change feed), ticking
//! durations, local times and as-you-type checks.
//!
//! The console does not use the FC API's signatures: without
//! `--credentials` it is open (the server is loopback-only then); with
//! them, [`session`] asks for an access key id and secret and keeps a
//! session cookie. Every POST carries a CSRF token either way.

mod all_tasks;
mod assets;
mod charts;
mod feed;
mod functions;
mod orchestrations;
mod provisioning;
mod releases;
mod session;
mod task_list;
mod tasks;
mod views;

use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use views::Viewer;

pub use session::Sessions;

use super::{ApiError, SharedState};

/// Where the console lives.
pub const PREFIX: &str = "/console";

/// The largest form a console page posts: an uploaded code package and
/// its settings, as the management API allows.
fn form_limit(app: &SharedState) -> usize {
    app.limits.management_body
}

/// The console's routes (the `/` redirect included).
pub fn routes(state: SharedState) -> Router<SharedState> {
    let limit = form_limit(&state);
    let pages = Router::new()
        .route("/", get(functions::overview))
        .route("/tasks", get(all_tasks::page))
        .route("/functions/new", get(functions::new_form).post(functions::create))
        .route("/services/{service}/functions/{function}", get(functions::page))
        .route(
            "/services/{service}/functions/{function}/async-policy",
            post(functions::save_policy),
        )
        .route(
            "/services/{service}/functions/{function}/triggers",
            post(releases::create_trigger),
        )
        .route(
            "/services/{service}/functions/{function}/triggers/{trigger}/delete",
            post(releases::delete_trigger),
        )
        .route(
            "/services/{service}/functions/{function}/versions",
            post(releases::publish_version),
        )
        .route(
            "/services/{service}/functions/{function}/versions/{version}/delete",
            post(releases::delete_version),
        )
        .route(
            "/services/{service}/functions/{function}/aliases",
            post(releases::save_alias),
        )
        .route(
            "/services/{service}/functions/{function}/aliases/{alias}/delete",
            post(releases::delete_alias),
        )
        .route(
            "/services/{service}/functions/{function}/provisioning",
            get(provisioning::page).post(provisioning::save),
        )
        .route(
            "/services/{service}/functions/{function}/instances/{instance}/recycle",
            post(functions::recycle),
        )
        .route("/services/{service}/functions/{function}/tasks", post(tasks::submit))
        .route(
            "/services/{service}/functions/{function}/tasks/bulk",
            get(tasks::bulk_confirm).post(tasks::bulk_run),
        )
        .route(
            "/services/{service}/functions/{function}/tasks/{id}",
            get(tasks::detail),
        )
        .route(
            "/services/{service}/functions/{function}/tasks/{id}/stop",
            post(tasks::stop),
        )
        .route(
            "/services/{service}/functions/{function}/tasks/{id}/rerun",
            post(tasks::rerun),
        )
        .route("/orchestrations", get(orchestrations::list).post(orchestrations::start))
        .route("/orchestrations/{id}", get(orchestrations::detail))
        .route("/orchestrations/{id}/{action}", post(orchestrations::act))
        .route("/feed", get(feed::stream))
        .route("/sign-out", post(session::sign_out))
        .layer(middleware::from_fn_with_state(state.clone(), session::gate))
        .route("/sign-in", get(session::sign_in_form).post(session::sign_in))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::extract::DefaultBodyLimit::max(limit));
    Router::new()
        .nest(PREFIX, pages)
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console/", get(|| async { Redirect::to("/console") }))
}

/// True for console paths: they render their own (HTML) errors and check
/// their own sessions, not FC signatures.
pub fn is_console_path(path: &str) -> bool {
    path == "/" || path == PREFIX || path.starts_with("/console")
}

/// A console page's failure: the core's error (status, code, message),
/// shown as a page with the request id.
#[derive(Debug)]
pub struct PageError(ApiError);

impl<E> From<E> for PageError
where
    ApiError: From<E>,
{
    fn from(e: E) -> Self {
        PageError(ApiError::from(e))
    }
}

impl PageError {
    pub fn invalid(message: impl Into<String>) -> PageError {
        PageError(ApiError::invalid(message))
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> PageError {
        PageError(ApiError::not_found(code, message))
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    chrome: views::Chrome,
    status: u16,
    reason: &'a str,
    code: &'a str,
    message: &'a str,
    request_id: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let page = ErrorPage {
            chrome: views::Chrome::plain("Error"),
            status: e.status.as_u16(),
            reason: e.status.canonical_reason().unwrap_or("error"),
            code: e.code,
            message: &e.message,
            request_id: super::error::current_request_id(),
        };
        match page.render() {
            Ok(html) => (e.status, Html(html)).into_response(),
            Err(_) => e.into_response(),
        }
    }
}

pub type PageResult = Result<Response, PageError>;

/// Renders a page template.
fn render(page: &impl Template) -> PageResult {
    let html = page
        .render()
        .map_err(|e| PageError(ApiError::internal("cannot render a console page", e)))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

/// After a form's action: back to a page (303, so a reload does not post
/// again).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}
