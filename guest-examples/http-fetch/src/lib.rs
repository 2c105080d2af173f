//! `http-fetch`: a `wasi:http/proxy` component that makes one outgoing
//! request. `GET /?url=<percent-encoded URL>` fetches that URL and answers
//! with its status and body; a request the host refuses or cannot make is
//! a 502 whose body names the error (e.g. `HttpRequestDenied`). The tests
//! use it to check the function's `allowedOutboundHosts`.

use std::io::Write as _;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(HttpFetch);

struct HttpFetch;

impl wasip2::exports::http::incoming_handler::Guest for HttpFetch {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let query = request.path_with_query().unwrap_or_default();
        let (status, body) = match target(&query) {
            Some(url) => fetch(&url),
            None => (400, b"usage: GET /?url=<percent-encoded URL>".to_vec()),
        };
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(status).expect("a valid status");
        let outgoing = response.body().expect("response body");
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = outgoing.write().expect("response body stream");
        out.write_all(&body).expect("writing the response body");
        out.flush().expect("flushing the response body");
        drop(out);
        OutgoingBody::finish(outgoing, None).expect("finishing the response body");
    }
}

/// The `url` query parameter, percent-decoded.
fn target(path_with_query: &str) -> Option<String> {
    let query = path_with_query.split_once('?')?.1;
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("url="))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// GETs `url`: (status, body), or 502 and the error.
fn fetch(url: &str) -> (u16, Vec<u8>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (400, format!("not an absolute URL: {url}").into_bytes());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => Scheme::Other(other.to_string()),
    }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(e) => return (502, format!("refused: {e:?}").into_bytes()),
    };
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return (502, format!("failed: {e:?}").into_bytes()),
        Some(Err(())) | None => return (502, b"failed: no response".to_vec()),
    };
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(stream) = incoming.stream()
    {
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            body.extend_from_slice(&chunk);
        }
    }
    (status, body)
}
