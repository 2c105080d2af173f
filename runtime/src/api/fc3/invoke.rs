//! FC 3.0's InvokeFunction: 2.0's, with 3.0's name for the task id.
//!
//! `x-fc-async-task-id` is 3.0's `X-Fc-Stateful-Async-Invocation-Id`; an
//! accepted task answers with both. Everything else (`x-fc-invocation-type`,
//! `x-fc-log-type`, `x-fc-async-delay`, the response headers) is spelled
//! the same in both generations.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName};
use axum::response::Response;

use super::Fc3Scope;
use crate::api::fc::invoke_function;
use crate::api::{ApiResult, SharedState, headers};

const ASYNC_TASK_ID: HeaderName = HeaderName::from_static("x-fc-async-task-id");

pub async fn invoke(
    State(app): State<SharedState>,
    scope: Fc3Scope,
    mut request_headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(id) = request_headers.remove(ASYNC_TASK_ID) {
        request_headers.insert(headers::STATEFUL_ASYNC_ID, id);
    }
    let mut resp = invoke_function(
        &app,
        scope.service(),
        scope.qualifier(),
        scope.function(),
        &request_headers,
        body,
    )
    .await?;
    if let Some(id) = resp.headers().get(headers::STATEFUL_ASYNC_ID).cloned() {
        resp.headers_mut().insert(ASYNC_TASK_ID, id);
    }
    Ok(resp)
}
