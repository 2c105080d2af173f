//! The `X-Fc-*` (and our `X-Wasmfc-*`) header names, built at compile time.
//!
//! A name given as `&str` is parsed and checked on every use — lower-case
//! validation, a lookup among the standard names, and for a lookup a hash
//! of the parsed result. On the warm invoke path that was about a tenth of
//! the server's own instructions per request, so the names the invoke and
//! HTTP-trigger paths set or read are constants here.

use axum::http::HeaderName;

/// Our request id, on every response (FC's).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-fc-request-id");

// Request headers read on the invoke path.
pub const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-fc-invocation-type");
pub const LOG_TYPE: HeaderName = HeaderName::from_static("x-fc-log-type");
pub const STATEFUL_ASYNC_ENABLE: HeaderName = HeaderName::from_static("x-fc-stateful-async-invocation-enable");
/// Request and response: the task id of a stateful async invocation.
pub const STATEFUL_ASYNC_ID: HeaderName = HeaderName::from_static("x-fc-stateful-async-invocation-id");
/// `X-Fc-Async-Delay`: seconds (0–3600) an async invocation waits before it
/// may run.
pub const ASYNC_DELAY: HeaderName = HeaderName::from_static("x-fc-async-delay");
/// `X-Wasmfc-Start: cold` (our extension) forces a cold start.
pub const WASMFC_START: HeaderName = HeaderName::from_static("x-wasmfc-start");

// Response headers of an invocation.
pub const INVOCATION_DURATION: HeaderName = HeaderName::from_static("x-fc-invocation-duration");
pub const START_TYPE: HeaderName = HeaderName::from_static("x-fc-start-type");
pub const SERVICE_VERSION: HeaderName = HeaderName::from_static("x-fc-invocation-service-version");
pub const MAX_MEMORY_USAGE: HeaderName = HeaderName::from_static("x-fc-max-memory-usage");
pub const CODE_CHECKSUM: HeaderName = HeaderName::from_static("x-fc-code-checksum");
pub const INSTANCE_ID: HeaderName = HeaderName::from_static("x-fc-instance-id");
pub const LOG_RESULT: HeaderName = HeaderName::from_static("x-fc-log-result");
pub const ERROR_TYPE: HeaderName = HeaderName::from_static("x-fc-error-type");
/// Fuel the invocation consumed (wasmfc's own; with `--fuel-metering`).
pub const WASMFC_FUEL_CONSUMED: HeaderName = HeaderName::from_static("x-wasmfc-fuel-consumed");

/// The value of header `name` as text, or `None` when it is absent.
///
/// A header that is present but not visible ASCII is a 400 that names it,
/// never "absent": read as absent, a task id with one non-ASCII byte would
/// become a server-made id (and a client retrying it would create a new
/// task each time), and `X-Fc-Invocation-Type: ésync` would run the
/// default way.
pub(crate) fn text<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, super::ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            super::ApiError::invalid(format!("header {name} is not valid: its value must be visible ASCII"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn a_present_header_that_is_not_ascii_is_an_error_naming_it() {
        let mut h = HeaderMap::new();
        assert_eq!(text(&h, &INVOCATION_TYPE).unwrap(), None);
        h.insert(INVOCATION_TYPE, HeaderValue::from_static("Async"));
        assert_eq!(text(&h, &INVOCATION_TYPE).unwrap(), Some("Async"));
        h.insert(INVOCATION_TYPE, HeaderValue::from_bytes("ésync".as_bytes()).unwrap());
        let err = text(&h, &INVOCATION_TYPE).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("x-fc-invocation-type"), "{}", err.message);
    }
}
