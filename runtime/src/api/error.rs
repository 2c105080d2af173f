//! The API's one error type and its FC rendering.
//!
//! Every error leaves as `{"ErrorCode","ErrorMessage"}` (what `aliyun-fc2`
//! reads) plus `Code`/`Message`/`RequestId` (what the 2021 SDK reads, so its
//! exceptions show the code), with the `X-Fc-Request-Id` header. Internals are
//! logged, not leaked: a store failure answers "internal error" with the
//! request id to look up in the server log.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::RegistryError;
use crate::store::StoreError;

tokio::task_local! {
    /// The request id of the request being served (set by the request-id
    /// middleware), so errors rendered anywhere below can carry it.
    pub static REQUEST_ID: String;
}

/// The current request's id, or a fresh one outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| crate::util::new_request_id())
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", message)
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        let id = current_request_id();
        tracing::error!(request_id = %id, "{context}: {err}");
        // 503 rather than 500: aliyun-fc2 retries 500 on GET/PUT/DELETE for
        // ~30 s, which helps nobody when the cause is on our side.
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "InternalServerError",
            format!("internal error ({context}); see the server log for request {id}"),
        )
    }
}

/// FC's error body: `ErrorCode`/`ErrorMessage` (what `aliyun-fc2` reads)
/// and `Code`/`Message`/`RequestId` (what the 2021 SDK reads).
pub(crate) fn error_body(code: &str, message: &str, request_id: &str) -> serde_json::Value {
    json!({
        "ErrorCode": code,
        "ErrorMessage": message,
        "Code": code,
        "Message": message,
        "RequestId": request_id,
    })
}

/// A whole HTTP/1.1 error answer, for the places that write to a socket
/// themselves (before hyper has one, or instead of hyper's own answer). It
/// closes the connection.
pub(crate) fn raw_error_answer(status: StatusCode, code: &str, message: &str) -> Vec<u8> {
    let id = crate::util::new_request_id();
    let body = error_body(code, message, &id).to_string();
    let reason = status.canonical_reason().unwrap_or("Error");
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-fc-request-id: {id}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    )
    .into_bytes()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let body = error_body(self.code, &self.message, &request_id);
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(super::headers::REQUEST_ID, v);
        }
        resp
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError::*;
        let msg = e.to_string();
        match e {
            InvalidArgument(_) => ApiError::invalid(msg),
            ServiceNotFound(_) => ApiError::not_found("ServiceNotFound", msg),
            FunctionNotFound { .. } => ApiError::not_found("FunctionNotFound", msg),
            VersionNotFound { .. } => ApiError::not_found("VersionNotFound", msg),
            AliasNotFound { .. } => ApiError::not_found("AliasNotFound", msg),
            TriggerNotFound { .. } => ApiError::not_found("TriggerNotFound", msg),
            ConfigNotFound(_) => ApiError::not_found("ResourceNotFound", msg),
            AlreadyExists { kind, .. } => ApiError::new(
                StatusCode::CONFLICT,
                match kind {
                    "service" => "ServiceAlreadyExists",
                    "function" => "FunctionAlreadyExists",
                    "alias" => "AliasAlreadyExists",
                    "trigger" => "TriggerAlreadyExists",
                    _ => "ResourceAlreadyExists",
                },
                msg,
            ),
            HttpTriggerExists { .. } => ApiError::new(StatusCode::CONFLICT, "TriggerAlreadyExists", msg),
            NotEmpty(_) => ApiError::new(StatusCode::BAD_REQUEST, "ResourceNotEmpty", msg),
            PreconditionFailed => ApiError::new(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", msg),
            CodeTooLarge(_) | UnpackedCodeTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", msg)
            }
            Store(e) => e.into(),
            Io(e) => ApiError::internal("code storage", e),
            Engine(e) => ApiError::internal("engine", e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            // The shared store is down or restarting: say so, and that a
            // retry may succeed, rather than hang the caller.
            tracing::warn!(request_id = %current_request_id(), error = %e, "the store is unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the store is unavailable (PostgreSQL cannot be reached); retry shortly",
            );
        }
        ApiError::internal("store", e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
