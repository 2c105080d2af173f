//! The server's outermost service.
//!
//! InvokeFunction is the request whose cost users measure: a warm invoke
//! should cost little more than the HTTP exchange itself. So it is matched
//! here by hand and served directly — through the same request-id,
//! body-limit, signature and handler code as every other route — without the
//! router's per-request work (two boxed middleware layers, the nested
//! prefix's URI rewrite, matching, and deserialising the path into a map).
//! HTTP-trigger requests (an HTTP function's every request) are matched and
//! served here the same way. Every other request, and any path these
//! matchers are unsure of (percent-escapes, empty segments), goes to the
//! router, which serves both kinds too.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tower::{Service, ServiceExt};

use super::fc::proxy::{ProxyTarget, serve_target};
use super::fc::{PROXY_PREFIX, QueryMap, invoke_function, split_service_segment};
use super::{SharedState, read_signed_body, with_request_id};

/// The router, with InvokeFunction served in front of it. Cheap to clone.
#[derive(Clone)]
pub struct Front {
    state: SharedState,
    router: Router,
}

impl Front {
    pub fn new(state: SharedState, router: Router) -> Front {
        Front { state, router }
    }

    /// Serves one request. Takes `&self` (hyper's services are shared by
    /// every request of a connection); the router is cloned only for the
    /// requests it serves.
    pub fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> {
        if proxy_target(req.uri().path()).is_some() {
            let serve = Box::pin(proxy(self.state.clone(), req));
            return Box::pin(with_request_id(serve).map(Ok));
        }
        if invocation_target(req.method(), req.uri().path()).is_some() {
            let state = self.state.clone();
            // The handler's future is boxed where it is made: wrapped
            // unboxed, its several KB would be copied at each wrapping
            // and again into the outer box (a visible memcpy per request).
            let serve = Box::pin(invoke(state, req));
            Box::pin(with_request_id(serve).map(Ok))
        } else {
            Box::pin(self.router.clone().oneshot(req))
        }
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.handle(req)
    }
}

/// `POST /{2016-08-15|2021-04-06}/services/{service}/functions/{function}/invocations`
/// → (service segment, function), when every segment is plain (no
/// percent-escapes to decode, none empty).
fn invocation_target<'a>(method: &Method, path: &'a str) -> Option<(&'a str, &'a str)> {
    if method != Method::POST {
        return None;
    }
    // Byte by byte: these paths are short, and `str::split`'s searcher cost
    // more per call than this whole scan.
    let rest = path
        .strip_prefix("/2016-08-15/services/")
        .or_else(|| path.strip_prefix("/2021-04-06/services/"))?;
    let (service, rest) = next_segment(rest)?;
    let (function, rest) = next_segment(rest.strip_prefix("functions/")?)?;
    if rest != "invocations" || service.is_empty() || function.is_empty() || path.as_bytes().contains(&b'%') {
        return None;
    }
    Some((service, function))
}

/// `segment/rest` → (segment, rest).
fn next_segment(path: &str) -> Option<(&str, &str)> {
    let slash = path.bytes().position(|b| b == b'/')?;
    Some((&path[..slash], &path[slash + 1..]))
}

/// `/2016-08-15/proxy/{service segment}/{function}[/{path...}]` →
/// (service segment, function), when both are plain (no percent-escapes to
/// decode, neither empty). What follows the function is the guest's own
/// path and is passed on as it is.
fn proxy_target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PROXY_PREFIX)?;
    let (service, rest) = next_segment(rest)?;
    let function = match rest.bytes().position(|b| b == b'/') {
        Some(slash) => &rest[..slash],
        None => rest,
    };
    let plain = |s: &str| !s.is_empty() && !s.as_bytes().contains(&b'%');
    (plain(service) && plain(function)).then_some((service, function))
}

/// Serves a request `proxy_target` matched: an HTTP trigger's, with the
/// body left streaming (the trigger decides on signatures).
async fn proxy(state: SharedState, req: Request) -> Response {
    // The target borrows from the URI (a reference-counted copy), not from
    // the request that moves on to the guest.
    let uri = req.uri().clone();
    let Some((segment, function)) = proxy_target(uri.path()) else {
        return super::ApiError::internal("HTTP trigger", "the proxy path no longer matches").into_response();
    };
    let (service, path_qualifier) = match split_service_segment(segment) {
        Ok(split) => split,
        Err(e) => return e.into_response(),
    };
    let query = match (path_qualifier, uri.query()) {
        (None, Some(_)) => Some(QueryMap::from_uri(&uri)),
        _ => None,
    };
    let qualifier = path_qualifier.or_else(|| query.as_ref().and_then(|q| q.get("qualifier")));
    let target = ProxyTarget {
        service,
        qualifier,
        function,
    };
    serve_target(&state, target, req).await
}

/// Serves a request `invocation_target` matched. The path's parts are
/// borrowed from the request as it is served, not copied.
async fn invoke(state: SharedState, req: Request) -> Response {
    let limit = state.limits.sync_payload;
    let (parts, body) = match read_signed_body(&state, req, limit).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let Some((segment, function)) = invocation_target(&parts.method, parts.uri.path()) else {
        // `Front::handle` matched this very path before the body was read.
        return super::ApiError::internal("InvokeFunction", "the invocation path no longer matches").into_response();
    };
    let (service, path_qualifier) = match split_service_segment(segment) {
        Ok(split) => split,
        Err(e) => return e.into_response(),
    };
    // `?qualifier=` only when the path has none; most invocations carry no
    // query string, so none is parsed.
    let query = match (path_qualifier, parts.uri.query()) {
        (None, Some(_)) => Some(QueryMap::from_uri(&parts.uri)),
        _ => None,
    };
    let qualifier = path_qualifier.or_else(|| query.as_ref().and_then(|q| q.get("qualifier")));
    invoke_function(&state, service, qualifier, function, &parts.headers, body)
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_plain_proxy_paths() {
        let p = "/2016-08-15/proxy/";
        assert_eq!(proxy_target(&format!("{p}svc/f")), Some(("svc", "f")));
        assert_eq!(proxy_target(&format!("{p}svc.prod/f/")), Some(("svc.prod", "f")));
        assert_eq!(proxy_target(&format!("{p}svc/f/a/b%20c")), Some(("svc", "f")));
        for path in [
            format!("{p}svc"),
            format!("{p}svc/"),
            format!("{p}/f"),
            format!("{p}svc//x"),
            format!("{p}s%76c/f"),
            format!("{p}svc/f%31/x"),
            "/2021-04-06/proxy/svc/f".to_string(),
            "/2016-08-15/proxyx/svc/f".to_string(),
        ] {
            assert_eq!(proxy_target(&path), None, "{path}");
        }
    }

    #[test]
    fn matches_only_plain_invocation_paths() {
        let post = Method::POST;
        assert_eq!(
            invocation_target(&post, "/2016-08-15/services/svc.prod/functions/f/invocations"),
            Some(("svc.prod", "f"))
        );
        assert_eq!(
            invocation_target(&post, "/2021-04-06/services/svc/functions/f-1/invocations"),
            Some(("svc", "f-1"))
        );
        for path in [
            "/2016-08-15/services/svc/functions/f/invocations/",
            "/2016-08-15/services/svc/functions//invocations",
            "/2016-08-15/services//functions/f/invocations",
            "/2016-08-15/services/svc/x/functions/f/invocations",
            "/2016-08-15/services/svc/functions/f/invocationsx",
            "/2016-08-15/services/svc/functions/f/invocations%2f",
            "/2016-08-15/services/s%76c/functions/f/invocations",
            "/2017-01-01/services/svc/functions/f/invocations",
            "/2016-08-15/services/svc/functions/f",
            "/2016-08-15/services/svc/functions/f/invocations/x",
            "2016-08-15/services/svc/functions/f/invocations",
        ] {
            assert_eq!(invocation_target(&post, path), None, "{path}");
        }
        assert_eq!(
            invocation_target(&Method::GET, "/2016-08-15/services/svc/functions/f/invocations"),
            None
        );
    }
}
