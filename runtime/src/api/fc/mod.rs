//! FC 2.0 routes. One router serves both API prefixes: `aliyun-fc2`
//! (2016-08-15) puts the qualifier in the path as `{service}.{qualifier}`,
//! the 2021 SDK passes `?qualifier=`; the [`Scope`] extractor is the only
//! place that knows the difference.

pub(super) mod async_config;
pub(super) mod bulk;
pub(super) mod functions;
mod instances;
pub(super) mod invoke;
pub(super) mod provision;
pub(super) mod proxy;
mod services;
pub mod tasks;
mod triggers;
pub(super) mod versions;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Map, Value};

use super::{ApiError, SharedState};
use crate::registry::{ListQuery, etag};

pub use functions::DOWNLOAD_PREFIX;
pub(super) use invoke::invoke_function;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/account-settings", get(services::account_settings))
        .route("/services", post(services::create).get(services::list))
        .route(
            "/services/{service}",
            get(services::get).put(services::update).delete(services::delete),
        )
        .route(
            "/services/{service}/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/services/{service}/functions/{function}",
            get(functions::get).put(functions::update).delete(functions::delete),
        )
        .route(
            "/services/{service}/functions/{function}/code",
            get(functions::get_code).put(functions::put_code),
        )
        .route(
            "/services/{service}/functions/{function}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/services/{service}/functions/{function}/async-invoke-config",
            get(async_config::get)
                .put(async_config::put)
                .delete(async_config::delete),
        )
        .route(
            "/services/{service}/functions/{function}/async-invoke-configs",
            get(async_config::list),
        )
        .route(
            "/services/{service}/functions/{function}/provision-config",
            get(provision::get).put(provision::put),
        )
        .route("/provision-configs", get(provision::list))
        .route(
            "/services/{service}/functions/{function}/triggers",
            post(triggers::create).get(triggers::list),
        )
        .route(
            "/services/{service}/functions/{function}/triggers/{trigger}",
            get(triggers::get).put(triggers::update).delete(triggers::delete),
        )
        .route(
            "/services/{service}/functions/{function}/instances",
            get(instances::list),
        )
        .route(
            "/services/{service}/functions/{function}/instances/{instance}/recycle",
            post(instances::recycle),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations",
            get(tasks::list),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations:stop",
            post(bulk::stop),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations:rerun",
            post(bulk::rerun),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations/{id}",
            get(tasks::get).put(tasks::stop),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations/{id}/rerun",
            post(tasks::rerun),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations/{id}/logs",
            get(tasks::logs),
        )
        .route("/stateful-async-invocation-functions", get(tasks::list_functions))
        .route(
            "/services/{service}/versions",
            post(versions::publish).get(versions::list),
        )
        .route("/services/{service}/versions/{version}", delete(versions::delete))
        .route(
            "/services/{service}/aliases",
            post(versions::create_alias).get(versions::list_aliases),
        )
        .route(
            "/services/{service}/aliases/{alias}",
            get(versions::get_alias)
                .put(versions::update_alias)
                .delete(versions::delete_alias),
        )
}

/// HTTP-trigger URLs: `/2016-08-15/proxy/{service}[.{qualifier}]/{function}/{path...}`
/// (FC serves them under the 2016 prefix only).
pub fn proxy_routes() -> Router<SharedState> {
    Router::new()
        .route(
            &format!("{PROXY_PREFIX}{{service}}/{{function}}"),
            axum::routing::any(proxy::serve),
        )
        .route(
            &format!("{PROXY_PREFIX}{{service}}/{{function}}/"),
            axum::routing::any(proxy::serve),
        )
        .route(
            &format!("{PROXY_PREFIX}{{service}}/{{function}}/{{*path}}"),
            axum::routing::any(proxy::serve),
        )
}

pub const PROXY_PREFIX: &str = "/2016-08-15/proxy/";

pub fn download_routes() -> Router<SharedState> {
    Router::new().route(&format!("{DOWNLOAD_PREFIX}{{package}}"), get(functions::download))
}

/// The decoded query string (names are case-sensitive, as the SDKs send
/// them; `+` is a space).
#[derive(Debug, Default, Clone)]
pub struct QueryMap(pub HashMap<String, String>);

impl QueryMap {
    pub fn from_uri(uri: &axum::http::Uri) -> QueryMap {
        QueryMap(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// An integer parameter; a malformed one is a 400, not silently absent.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::invalid(format!("query parameter {key} must be an integer, got '{v}'")))
            })
            .transpose()
    }

    /// A boolean parameter; the SDKs send `true`, `True`, `false`, `False`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::invalid(format!(
                    "query parameter {key} must be true or false, got '{v}'"
                ))),
            })
            .transpose()
    }

    pub fn list_query(&self) -> Result<ListQuery, ApiError> {
        Ok(ListQuery {
            prefix: self.get("prefix").map(str::to_string),
            start_key: self.get("startKey").map(str::to_string),
            next_token: self.get("nextToken").map(str::to_string),
            limit: self.int("limit")?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryMap::from_uri(&parts.uri))
    }
}

/// The resource a route addresses: service, qualifier and the other path
/// parameters. `svc.prod` in the path and `?qualifier=prod` mean the same.
#[derive(Debug, Clone)]
pub struct Scope {
    pub service: String,
    pub qualifier: Option<String>,
    params: HashMap<String, String>,
    pub query: QueryMap,
}

impl Scope {
    /// A path parameter (`function`, `alias`, `version`, ...).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn function(&self) -> &str {
        self.param("function")
    }

    pub fn qualifier(&self) -> Option<&str> {
        self.qualifier.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params): Path<HashMap<String, String>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("bad path: {e}")))?;
        Scope::new(params, QueryMap::from_uri(&parts.uri))
    }
}

impl Scope {
    /// The scope of path parameters `params` (`service` still in its
    /// `svc[.qualifier]` form) and the query string.
    pub fn new(params: HashMap<String, String>, query: QueryMap) -> Result<Scope, ApiError> {
        let raw = params.get("service").map(String::as_str).unwrap_or_default();
        let (service, path_qualifier) = split_service_segment(raw)?;
        let qualifier = path_qualifier.or_else(|| query.get("qualifier")).map(str::to_string);
        Ok(Scope {
            service: service.to_string(),
            qualifier,
            params,
            query,
        })
    }
}

/// The service segment of a path, `svc` or `svc.qualifier`, split in two.
/// Service names cannot contain '.', so the first one starts the qualifier.
pub fn split_service_segment(raw: &str) -> Result<(&str, Option<&str>), ApiError> {
    match raw.split_once('.') {
        Some((_, "")) => Err(ApiError::invalid("empty qualifier after '.' in the service segment")),
        Some((service, qualifier)) => Ok((service, Some(qualifier))),
        None => Ok((raw, None)),
    }
}

/// The `If-Match` header, if any (one that is not ASCII is a 400: read as
/// absent, it would skip the precondition it asks for).
pub fn if_match(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    crate::api::headers::text(headers, &axum::http::header::IF_MATCH)
}

/// 200 with a JSON body.
pub fn json(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// 200 with a resource object and its `ETag`.
pub fn object(doc: Map<String, Value>) -> Response {
    let tag = etag(&doc);
    let mut resp = json(Value::Object(doc));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert("etag", v);
    }
    resp
}

/// A list page: `{<field>: [...], "nextToken": ...}`.
pub fn page(field: &str, items: Vec<Map<String, Value>>, next: Option<String>) -> Response {
    let mut body = Map::new();
    body.insert(
        field.into(),
        Value::Array(items.into_iter().map(Value::Object).collect()),
    );
    body.insert("nextToken".into(), next.map_or(Value::Null, Value::String));
    json(Value::Object(body))
}

/// 204 for deletes.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Qualifiers in the service segment.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::split_service_segment;

    proptest! {
        #[test]
        fn a_service_and_its_qualifier_split_back(service in "[a-zA-Z_][a-zA-Z0-9_-]{0,30}", qualifier in "[a-zA-Z0-9_.-]{1,30}") {
            let segment = format!("{service}.{qualifier}");
            let (s, q) = split_service_segment(&segment).unwrap();
            prop_assert_eq!(s, service.as_str());
            prop_assert_eq!(q, Some(qualifier.as_str()));
            prop_assert_eq!(split_service_segment(&service).unwrap(), (service.as_str(), None));
        }

        #[test]
        fn any_segment_is_answered(segment in "\\PC{0,60}") {
            if let Ok((service, qualifier)) = split_service_segment(&segment) {
                prop_assert!(!service.contains('.'));
                prop_assert!(qualifier.is_none_or(|q| !q.is_empty()));
            }
        }
    }
}
