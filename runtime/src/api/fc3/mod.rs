//! FC 3.0 routes (`/2023-03-30`), as the `alibabacloud-fc20230330` SDK
//! calls them, over the same registry, pool and scheduler as FC 2.0.
//!
//! FC 3.0 has no services. A 3.0 function `f` is the 2.0 function `f` of
//! its own service `f` (see `registry::own_service`); every other 2.0
//! function `g` of service `s` is `s$g` here, as Alibaba names 2.0
//! functions in 3.0. [`Fc3Scope`] is the one place that maps a 3.0 name to
//! a (service, function) and back, and hands 2.0 handlers the [`Scope`]
//! they expect where the two APIs agree.

mod functions;
mod invoke;
mod releases;
mod scaling;
mod scaling_config;
mod tasks;
mod triggers;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};

use super::fc::{QueryMap, Scope};
use super::{ApiError, SharedState};

/// Region and account in the ARNs this server hands out.
const ARN_PREFIX: &str = "acs:fc:local:local";

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/functions", post(functions::create).get(functions::list))
        .route(
            "/functions/{function}",
            get(functions::get).put(functions::update).delete(functions::delete),
        )
        .route(
            "/functions/{function}/code",
            get(functions::get_code).put(functions::put_code),
        )
        .route("/functions/{function}/invocations", post(invoke::invoke))
        .route(
            "/functions/{function}/versions",
            post(releases::publish).get(releases::list_versions),
        )
        .route(
            "/functions/{function}/versions/{version}",
            axum::routing::delete(releases::delete_version),
        )
        .route(
            "/functions/{function}/aliases",
            post(releases::create_alias).get(releases::list_aliases),
        )
        .route(
            "/functions/{function}/aliases/{alias}",
            get(releases::get_alias)
                .put(releases::update_alias)
                .delete(releases::delete_alias),
        )
        .route(
            "/functions/{function}/async-invoke-config",
            get(tasks::get_config)
                .put(tasks::put_config)
                .delete(tasks::delete_config),
        )
        .route("/async-invoke-configs", get(tasks::list_configs))
        .route("/functions/{function}/async-tasks", get(tasks::list))
        .route("/functions/{function}/async-tasks/{id}", get(tasks::get))
        .route("/functions/{function}/async-tasks/{id}/stop", put(tasks::stop))
        .route(
            "/functions/{function}/provision-config",
            get(scaling::get_provision)
                .put(scaling::put_provision)
                .delete(scaling::delete_provision),
        )
        .route("/provision-configs", get(scaling::list_provision))
        .route(
            "/functions/{function}/concurrency",
            get(scaling::get_concurrency)
                .put(scaling::put_concurrency)
                .delete(scaling::delete_concurrency),
        )
        .route("/concurrency-configs", get(scaling::list_concurrency))
        .route(
            "/functions/{function}/scaling-config",
            get(scaling_config::get)
                .put(scaling_config::put)
                .delete(scaling_config::delete),
        )
        .route("/scaling-configs", get(scaling_config::list))
        .route(
            "/functions/{function}/triggers",
            post(triggers::create).get(triggers::list),
        )
        .route(
            "/functions/{function}/triggers/{trigger}",
            get(triggers::get).put(triggers::update).delete(triggers::delete),
        )
        .route("/functions/{function}/instances", get(triggers::instances))
        .layer(axum::middleware::from_fn(functions_not_services))
}

/// FC 3.0 has no services to be missing: a 2.0 `ServiceNotFound` (the
/// function's own service is not there) is 3.0's `FunctionNotFound`.
async fn functions_not_services(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let name = req
        .uri()
        .path()
        .split("/functions/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|n| percent_encoding::percent_decode_str(n).decode_utf8_lossy().into_owned());
    let resp = next.run(req).await;
    let Some(name) = name.filter(|_| resp.status() == StatusCode::NOT_FOUND) else {
        return resp;
    };
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let is_service = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("ErrorCode").and_then(Value::as_str) == Some("ServiceNotFound"));
    if !is_service {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    ApiError::not_found("FunctionNotFound", format!("function '{name}' does not exist")).into_response()
}

/// The (service, function) a 3.0 function name stands for: `s$g` is
/// function `g` of service `s`, a plain `f` is function `f` of service `f`.
pub fn split_name(name: &str) -> (&str, &str) {
    name.split_once('$').unwrap_or((name, name))
}

/// The 3.0 name of 2.0 function `function` of `service`.
pub fn fc3_name(service: &str, function: &str) -> String {
    if service == function {
        function.to_string()
    } else {
        format!("{service}${function}")
    }
}

/// `acs:fc:<region>:<account>:functions/<name>`.
pub fn function_arn(name: &str) -> String {
    format!("{ARN_PREFIX}:functions/{name}")
}

/// A 3.0 route's function, its 2.0 address, and the 2.0 [`Scope`] of the
/// same request (other path parameters and the query carried over).
#[derive(Debug, Clone)]
pub struct Fc3Scope {
    /// The function's 3.0 name, as the path gave it.
    pub name: String,
    pub v2: Scope,
}

impl Fc3Scope {
    pub fn service(&self) -> &str {
        &self.v2.service
    }

    pub fn function(&self) -> &str {
        self.v2.function()
    }

    pub fn qualifier(&self) -> Option<&str> {
        self.v2.qualifier()
    }

    pub fn query(&self) -> &QueryMap {
        &self.v2.query
    }

    pub fn arn(&self) -> String {
        function_arn(&self.name)
    }

    /// The same request with its query's names renamed (3.0 name → 2.0
    /// name), for 2.0 code that reads the 2.0 names.
    pub fn with_query_renamed(&self, renames: &[(&str, &str)]) -> Scope {
        let mut scope = self.v2.clone();
        for (from, to) in renames {
            if let Some(v) = scope.query.0.remove(*from) {
                scope.query.0.insert((*to).to_string(), v);
            }
        }
        scope
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Fc3Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(mut params): Path<HashMap<String, String>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("bad path: {e}")))?;
        let name = params.remove("function").unwrap_or_default();
        if name.contains('.') {
            return Err(ApiError::invalid(format!(
                "function name '{name}' is invalid: use ?qualifier= for a version or alias"
            )));
        }
        let (service, function) = split_name(&name);
        params.insert("service".into(), service.to_string());
        params.insert("function".into(), function.to_string());
        let v2 = Scope::new(params, QueryMap::from_uri(&parts.uri))?;
        Ok(Fc3Scope { name, v2 })
    }
}

/// Adds the 3.0 fields of a resource that belongs to function `name`.
fn with_arn(mut doc: Map<String, Value>, name: &str) -> Map<String, Value> {
    doc.insert("functionArn".into(), json!(function_arn(name)));
    doc
}

/// `{<field>: [...], "nextToken": ...}` as a response.
fn page(field: &str, items: Vec<Map<String, Value>>, next: Option<String>) -> Response {
    super::fc::page(field, items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_a_service_and_function_and_back() {
        assert_eq!(split_name("f"), ("f", "f"));
        assert_eq!(split_name("svc$fn"), ("svc", "fn"));
        assert_eq!(fc3_name("f", "f"), "f");
        assert_eq!(fc3_name("svc", "fn"), "svc$fn");
        for name in ["f", "svc$fn"] {
            let (s, f) = split_name(name);
            assert_eq!(fc3_name(s, f), name);
        }
    }
}
