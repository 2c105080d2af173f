//! The server's outermost service.
//!
//! InvokeFunction is the request whose cost users measure: a warm invoke
//! should cost little more than the HTTP exchange itself. So it is matched
//! here by hand and served directly — through the same request-id,
//! body-limit, signature and handler code as every other route — without the
//! router's per-request work (two boxed middleware layers, the nested
//! prefix's URI rewrite, matching, and deserialising the path into a map).
//! Every other request, and any invocation path this matcher is unsure of
//! (percent-escapes, empty segments), goes to the router, which serves
//! InvokeFunction too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tower::{Service, ServiceExt};

use super::fc::{QueryMap, Scope};
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
        match invocation_target(req.method(), req.uri().path()) {
            Some((service, function)) => {
                let state = self.state.clone();
                // The handler's future is boxed where it is made: wrapped
                // unboxed, its several KB would be copied at each wrapping
                // and again into the outer box (a visible memcpy per request).
                let serve = Box::pin(invoke(state, service, function, req));
                Box::pin(with_request_id(serve).map(Ok))
            }
            None => Box::pin(self.router.clone().oneshot(req)),
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
fn invocation_target(method: &Method, path: &str) -> Option<(String, String)> {
    if method != Method::POST || path.contains('%') {
        return None;
    }
    let mut segments = path.strip_prefix('/')?.split('/');
    let api = segments.next()?;
    if api != "2016-08-15" && api != "2021-04-06" {
        return None;
    }
    let (Some("services"), Some(service), Some("functions"), Some(function), Some("invocations"), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return None;
    };
    if service.is_empty() || function.is_empty() {
        return None;
    }
    Some((service.to_string(), function.to_string()))
}

async fn invoke(state: SharedState, service: String, function: String, req: Request) -> Response {
    let limit = state.limits.sync_payload;
    let (parts, body) = match read_signed_body(&state, req, limit).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let params = HashMap::from([("service".to_string(), service), ("function".to_string(), function)]);
    let scope = match Scope::new(params, QueryMap::from_uri(&parts.uri)) {
        Ok(scope) => scope,
        Err(e) => return e.into_response(),
    };
    super::fc::invoke(State(state), scope, parts.headers, body)
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_plain_invocation_paths() {
        let post = Method::POST;
        assert_eq!(
            invocation_target(&post, "/2016-08-15/services/svc.prod/functions/f/invocations"),
            Some(("svc.prod".into(), "f".into()))
        );
        assert_eq!(
            invocation_target(&post, "/2021-04-06/services/svc/functions/f-1/invocations"),
            Some(("svc".into(), "f-1".into()))
        );
        for path in [
            "/2016-08-15/services/svc/functions/f/invocations/",
            "/2016-08-15/services/svc/functions//invocations",
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
