//! `http-hello`: a `wasi:http/proxy` component (an HTTP function). Answers
//! with a JSON description of the request: method, path, query and the
//! `x-*` headers it received.
//!
//! For tests: `?status=NNN` sets the response status, `/trap` panics before
//! answering and `/loop` never answers (the function's timeout ends it).
//! `x-wasmfc-served` counts the requests this instance has answered, so a
//! test sees whether an instance was reused (its globals persist).

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(HttpHello);

struct HttpHello;

/// Requests this instance has answered (a global: it survives between
/// requests only when the instance is reused).
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

/// A JSON string literal (the guest carries no JSON crate).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl wasip2::exports::http::incoming_handler::Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = method_name(&request.method());
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
        let (path, query) = match path_with_query.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (path_with_query.clone(), String::new()),
        };
        if path == "/trap" {
            panic!("http-hello was asked to trap");
        }
        if path == "/loop" {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        let status = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("status="))
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(200);
        let headers: Vec<String> = request
            .headers()
            .entries()
            .into_iter()
            .filter(|(name, _)| name.starts_with("x-"))
            .map(|(name, value)| format!("{}:{}", quote(&name), quote(&String::from_utf8_lossy(&value))))
            .collect();
        let body = format!(
            "{{\"method\":{},\"path\":{},\"query\":{},\"headers\":{{{}}}}}",
            quote(&method),
            quote(&path),
            quote(&query),
            headers.join(",")
        );
        println!("http-hello: {method} {path_with_query}");

        let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let fields = Fields::from_list(&[
            ("content-type".to_string(), b"application/json".to_vec()),
            ("x-wasmfc-guest".to_string(), b"http-hello".to_vec()),
            ("x-wasmfc-served".to_string(), served.to_string().into_bytes()),
        ])
        .expect("valid response headers");
        let response = OutgoingResponse::new(fields);
        response.set_status_code(status).ok();
        let outgoing = response.body().expect("response body");
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = outgoing.write().expect("body stream");
        out.write_all(body.as_bytes()).expect("writing the body");
        out.flush().expect("flushing the body");
        drop(out);
        OutgoingBody::finish(outgoing, None).expect("finishing the body");
    }
}
