//! `http-echo`: a `wasi:http/proxy` component that streams the request body
//! back as it arrives, chunk by chunk, with the request's content type. The
//! body is never held whole in guest memory.

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::StreamError;

wasip2::http::proxy::export!(HttpEcho);

struct HttpEcho;

const CHUNK: u64 = 64 * 1024;

impl wasip2::exports::http::incoming_handler::Guest for HttpEcho {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let content_type = request
            .headers()
            .get("content-type")
            .into_iter()
            .next()
            .unwrap_or_else(|| b"application/octet-stream".to_vec());
        let fields = Fields::from_list(&[("content-type".to_string(), content_type)]).expect("valid headers");
        let response = OutgoingResponse::new(fields);
        let outgoing = response.body().expect("response body");
        ResponseOutparam::set(response_out, Ok(response));

        let incoming = request.consume().expect("request body");
        let input = incoming.stream().expect("request body stream");
        let mut out = outgoing.write().expect("response body stream");
        let mut total: u64 = 0;
        loop {
            match input.blocking_read(CHUNK) {
                Ok(chunk) => {
                    total += chunk.len() as u64;
                    out.write_all(&chunk).expect("writing the response body");
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => panic!("reading the request body: {}", e.to_debug_string()),
            }
        }
        out.flush().expect("flushing the response body");
        drop(out);
        drop(input);
        OutgoingBody::finish(outgoing, None).expect("finishing the response body");
        eprintln!("http-echo: echoed {total} bytes");
    }
}
