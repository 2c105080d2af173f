//! The task list across every function: the same filters, paging and live
//! feed as a function's list, with a Function column.

use askama::Template;
use axum::extract::{Extension, RawQuery, State};

use super::task_list::{ListParams, TaskListView, list_view};
use super::views::Chrome;
use super::{PageResult, Viewer, render};
use crate::api::SharedState;

#[derive(Template)]
#[template(path = "console/tasks.html")]
struct AllTasksPage {
    chrome: Chrome,
    /// The page the filter form and pager links go to.
    href: String,
    tasks: TaskListView,
}

pub async fn page(
    State(app): State<SharedState>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = ListParams::parse(raw.as_deref())?;
    let href = format!("{}/tasks", super::PREFIX);
    let tasks = list_view(&app, None, &href, &params).await?;
    render(&AllTasksPage {
        chrome: Chrome::new(&viewer, "tasks", "Tasks"),
        href,
        tasks,
    })
}
