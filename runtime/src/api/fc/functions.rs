//! Functions: Create/Get/Update/Delete/List, GetFunctionCode, the raw
//! `application/wasm` upload, and the signed code-download route that
//! GetFunctionCode's `url` points at (FC answers with a presigned OSS URL;
//! ours is presigned the same way, with an HMAC and an expiry).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{QueryMap, Scope, if_match, no_content, object, page};
use crate::api::{ApiError, ApiResult, AppState, SharedState};
use crate::registry::Fields;

pub const DOWNLOAD_PREFIX: &str = "/wasmfc/code/";
/// How long a GetFunctionCode URL stays valid.
const DOWNLOAD_URL_TTL_SECS: i64 = 600;

pub async fn create(State(app): State<SharedState>, scope: Scope, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(app.registry.create_function(&scope.service, &fields).await?))
}

pub async fn get(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let entry = app
        .registry
        .get_function(&scope.service, scope.qualifier(), scope.function())?;
    Ok(object(entry.doc.clone()))
}

pub async fn update(
    State(app): State<SharedState>,
    scope: Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    let doc = app
        .registry
        .update_function(&scope.service, scope.function(), &fields, if_match(&headers)?)
        .await?;
    Ok(object(doc))
}

pub async fn delete(State(app): State<SharedState>, scope: Scope, headers: HeaderMap) -> ApiResult<Response> {
    app.registry
        .delete_function(&scope.service, scope.function(), if_match(&headers)?)
        .await?;
    Ok(no_content())
}

pub async fn list(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let (items, next) = app
        .registry
        .list_functions(&scope.service, scope.qualifier(), &scope.query.list_query()?)?;
    Ok(page("functions", items, next))
}

/// The raw upload: `PUT .../functions/{f}/code` with `application/wasm`.
pub async fn put_code(
    State(app): State<SharedState>,
    scope: Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/wasm") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "InvalidArgument",
            "send the module as the body with Content-Type: application/wasm",
        ));
    }
    let doc = app
        .registry
        .put_function_code(&scope.service, scope.function(), body)
        .await?;
    Ok(object(doc))
}

fn url_signature(app: &AppState, package: &str, expires: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app.url_secret.as_bytes()).expect("HMAC accepts any key");
    mac.update(format!("{package}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// GetFunctionCode. The URL is built on `--public-url`, never on the
/// request's `Host` header: a client could otherwise have the server sign a
/// URL that points anywhere.
pub async fn get_code(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let (package, checksum) = app
        .registry
        .function_code(&scope.service, scope.qualifier(), scope.function())?;
    let expires = chrono::Utc::now().timestamp() + DOWNLOAD_URL_TTL_SECS;
    let sig = url_signature(&app, &package, expires);
    let base = &app.public_url;
    let url = format!("{base}{DOWNLOAD_PREFIX}{package}?expires={expires}&signature={sig}");
    Ok(super::json(json!({ "url": url, "checksum": checksum })))
}

pub async fn download(
    State(app): State<SharedState>,
    Path(package): Path<String>,
    query: QueryMap,
) -> ApiResult<Response> {
    let expires = query.int("expires")?.unwrap_or(0);
    let sig = query.get("signature").unwrap_or("");
    let expected = url_signature(&app, &package, expires);
    let valid = bool::from(expected.as_bytes().ct_eq(sig.as_bytes()));
    if !valid || expires < chrono::Utc::now().timestamp() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the download URL is invalid or has expired; call GetFunctionCode again",
        ));
    }
    if !app.registry.package_known(&package) {
        return Err(ApiError::not_found("ResourceNotFound", "no such code package"));
    }
    let path = app.registry.code_dir().package_path(&package);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::internal("reading code package", e))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
