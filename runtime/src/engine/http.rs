//! HTTP functions: `wasi:http/proxy` components (WASI 0.2), the world Spin,
//! `wasmtime serve` and wasmCloud components target, so those run here
//! unchanged.
//!
//! As FC does for event and HTTP functions alike, an instance that answered
//! a request successfully serves the next one (its store, with the guest's
//! memory and globals, goes back to the pool; `wasi:http` resources are
//! per request and left behind with it). One that trapped, timed out or
//! was stopped is dropped. A function that wants a fresh instance per
//! request, as `wasmtime serve` and Spin give by default, sets
//! `freshInstancePerRequest`; a new instance is a store and
//! `ProxyPre::instantiate_async`, microseconds with the pooling allocator.
//!
//! The guest runs in its own task. The caller gets the response as soon as
//! the guest sets it (`response-outparam.set`), and the body streams while
//! the guest keeps writing; the deadline and the stop handle bound the whole
//! run, body included. The request body streams into the guest as it
//! arrives — nothing is buffered here.
//!
//! Outgoing HTTP is denied unless the function's allow-list lets it
//! ([`InstanceSettings::allowed_outbound_hosts`], [`super::outbound`]).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::call::{CallEnd, classify, race};
use super::capture::Capture;
use super::invocation::{InvocationContext, InvokeError};
use super::outbound::{self, AllowList, Decision};
use super::sandbox::{self, Bounds, InstanceSettings, Sandboxed};
use super::{Engine, Prepared};

/// The error type request and response bodies carry.
pub type HttpBodyError = wasmtime_wasi_http::Error;

/// Store data of an HTTP function's instance.
pub struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    bounds: Bounds,
    outbound: OutboundPolicy,
}

sandbox::impl_sandboxed!(HttpState);

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Decides which outgoing requests a guest may make: none, unless the
/// function's allow-list lets them (see [`super::outbound`]).
struct OutboundPolicy {
    allowed: Arc<AllowList>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpBodyError>> + Send>,
                ),
                HttpBodyError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpBodyError>> + Send>,
    ) -> SendFuture {
        _ = fut;
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().or_else(|| outbound::default_port(&scheme));
        let decision = match port {
            Some(port) if !host.is_empty() => self.allowed.decide(&scheme, &host, port),
            _ => Decision::Denied,
        };
        let denied = |why: String| -> SendFuture {
            tracing::info!(%why, "denied an outgoing request");
            Box::new(async { Err(HttpBodyError::HttpRequestDenied) })
        };
        match (decision, port) {
            (Decision::Named, _) => Box::new(send(request, options)),
            (Decision::PublicOnly, Some(port)) => Box::new(async move {
                let addr = match outbound::resolve_public(&host, port).await {
                    Ok(addr) => addr,
                    Err(why) => {
                        tracing::info!(%why, "denied an outgoing request");
                        return Err(HttpBodyError::HttpRequestDenied);
                    }
                };
                let mut request = request;
                if scheme == "http" {
                    // Connect to the address that was checked; the Host
                    // header still names the host.
                    pin_authority(&mut request, addr)?;
                }
                send(request, options).await
            }),
            _ => denied(format!(
                "{} is not on the function's allowedOutboundHosts",
                request.uri()
            )),
        }
    }
}

/// Points `request` at `addr` (its URI's authority), keeping its path.
fn pin_authority(request: &mut http::Request<WasiBody>, addr: std::net::SocketAddr) -> Result<(), HttpBodyError> {
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(
        addr.to_string()
            .parse()
            .map_err(|_| HttpBodyError::HttpRequestUriInvalid)?,
    );
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| HttpBodyError::HttpRequestUriInvalid)?;
    Ok(())
}

async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpBodyError>> + Send>,
    ),
    HttpBodyError,
> {
    let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
    Ok((
        response.map(BodyExt::boxed_unsync),
        Box::new(io) as Box<dyn Future<Output = Result<(), HttpBodyError>> + Send>,
    ))
}

/// A live instance kept between requests: its store and its exports, and
/// the capture its WASI output goes to.
pub struct LiveHttp {
    store: wasmtime::Store<HttpState>,
    proxy: Proxy,
    capture: Capture,
}

/// An HTTP function's instance: its recipe, and once it has served, the
/// live instance that serves the next request.
pub struct HttpInstance {
    pub(super) id: String,
    pub(super) engine: Engine,
    pub(super) pre: ProxyPre<HttpState>,
    pub(super) settings: Arc<InstanceSettings>,
    /// Held, not read: keeps the compiled code loaded while the instance
    /// (and its live store) exists.
    pub(super) _prepared: Arc<Prepared>,
    pub(super) live: Option<LiveHttp>,
}

impl HttpInstance {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A new store for this function, with its own output capture.
    fn new_store(&self) -> Result<(wasmtime::Store<HttpState>, Capture), InvokeError> {
        let capture = Capture::log_only(self.engine.config().log_limit);
        let bounds = Bounds::new(&self.engine, self.settings.memory_limit_mb, self.settings.fuel_budget)?;
        let state = HttpState {
            wasi: sandbox::locked_wasi(&capture, &self.settings.env).build(),
            http: WasiHttpCtx::new(),
            table: sandbox::resource_table(),
            bounds,
            outbound: OutboundPolicy {
                allowed: self.settings.allowed_outbound_hosts.clone(),
            },
        };
        Ok((sandbox::new_store(&self.engine, state), capture))
    }

    /// Serves one request, on the live instance when there is one, else on
    /// a new one. Answers once the guest has set its response (or failed
    /// before doing so); the guest keeps running in its own task while it
    /// writes the body, and `done` is called when it has finished: with
    /// this instance when it may serve again (the request succeeded and the
    /// function reuses instances), with `None` when it must be dropped.
    ///
    /// Also answers the guest's output capture, from which the caller may
    /// take a log tail.
    pub async fn serve<B, D>(
        mut self,
        ctx: &InvocationContext,
        request: http::Request<B>,
        done: D,
    ) -> (Result<http::Response<HyperOutgoingBody>, InvokeError>, Capture)
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<HttpBodyError>,
        D: FnOnce(Option<HttpInstance>) + Send + 'static,
    {
        let (mut store, proxy, capture) = match self.live.take() {
            Some(live) => {
                // The previous request's output is not this one's log.
                let _ = live.capture.take();
                (live.store, Some(live.proxy), live.capture)
            }
            None => match self.new_store() {
                Ok((store, capture)) => (store, None, capture),
                Err(e) => {
                    done(None);
                    return (Err(e), Capture::log_only(0));
                }
            },
        };
        sandbox::arm(&mut store, &ctx.stop, ctx.deadline);

        let internal = |e: wasmtime::Error| InvokeError::Internal(format!("preparing the request: {e:#}"));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let created = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .and_then(|incoming| Ok((incoming, store.data_mut().http().new_response_outparam(sender)?)));
        let (incoming, outparam) = match created {
            Ok(pair) => pair,
            Err(e) => {
                done(None);
                return (Err(internal(e)), capture);
            }
        };
        let log = capture.clone();

        let task_ctx = ctx.clone();
        let stop = ctx.stop.clone();
        // A guest that burns CPU moves to the guest threads (see `offload`).
        let guest = tokio::spawn(super::offload::run(
            Box::pin(async move {
                let pre = self.pre.clone();
                let run = async {
                    let proxy = match proxy {
                        Some(proxy) => proxy,
                        None => pre.instantiate_async(&mut store).await?,
                    };
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, incoming, outparam)
                        .await
                        .map(|()| proxy)
                };
                let end = race(run, &task_ctx.stop, task_ctx.deadline).await;
                let log = capture.log_tail(usize::MAX);
                let (result, kept) = match end {
                    CallEnd::Returned(Ok(proxy)) => (Ok(()), Some(proxy)),
                    CallEnd::Returned(Err(e)) => {
                        (Err(classify(&e, &task_ctx, store.data().bounds(), false, &log)), None)
                    }
                    CallEnd::Stopped => (Err(InvokeError::Stopped), None),
                    CallEnd::TimedOut => (Err(InvokeError::Timeout(task_ctx.timeout)), None),
                };
                if let Err(e) = &result {
                    tracing::info!(request_id = %task_ctx.request_id, error = %e, "HTTP function failed");
                }
                match kept.filter(|_| self.settings.reuse_http_instances) {
                    Some(proxy) => {
                        self.live = Some(LiveHttp { store, proxy, capture });
                        done(Some(self));
                    }
                    None => done(None),
                }
                result
            }),
            stop,
        ));

        let response = match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(InvokeError::Handled(format!(
                "the function answered with an error: {code:?}"
            ))),
            // The outparam was dropped unset: the guest failed or returned
            // without answering.
            Err(_) => match guest.await {
                Ok(Ok(())) => Err(InvokeError::Handled(
                    "the function returned without setting a response".into(),
                )),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(InvokeError::Internal(format!("the guest task failed: {e}"))),
            },
        };
        (response, log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_requests_round_trip() {
        let r = RecordedRequest {
            method: "POST".into(),
            path_with_query: "/a?b=1".into(),
            headers: vec![("host".into(), "example.test".into()), ("x-k".into(), "v".into())],
            body: Bytes::from_static(&[0, 159, 146, 150]),
        };
        let back = RecordedRequest::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        let req = back.to_request().unwrap();
        assert_eq!(req.uri().to_string(), "http://example.test/a?b=1");
        assert_eq!(req.headers()["x-k"], "v");
        assert!(RecordedRequest::decode(b"{").is_err());
    }
}

/// An HTTP request recorded for later (an async invocation through an HTTP
/// trigger): what the task stores as its payload and replays into the
/// guest when it runs. Bodies are base64 in the JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    pub method: String,
    /// The path after the function name, with its query (`/a/b?x=1`).
    pub path_with_query: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64_bytes")]
    pub body: Bytes,
}

mod base64_bytes {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

impl RecordedRequest {
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(bytes: &[u8]) -> Result<RecordedRequest, InvokeError> {
        serde_json::from_slice(bytes)
            .map_err(|e| InvokeError::Internal(format!("the task's recorded HTTP request is unreadable: {e}")))
    }

    /// The request to hand the guest again.
    pub fn to_request(&self) -> Result<http::Request<http_body_util::Full<Bytes>>, InvokeError> {
        let mut builder = http::Request::builder().method(self.method.as_str());
        let authority = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or("localhost", |(_, v)| v.as_str());
        builder = builder.uri(format!("http://{authority}{}", self.path_with_query));
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder
            .body(http_body_util::Full::new(self.body.clone()))
            .map_err(|e| InvokeError::Internal(format!("rebuilding the recorded HTTP request: {e}")))
    }
}

/// A guest's HTTP response, collected whole: an async HTTP invocation's
/// result, as JSON (`status`, `headers`, `body`; `bodyBase64` when the body
/// is not UTF-8).
pub async fn collect_response(response: http::Response<HyperOutgoingBody>) -> Result<Bytes, InvokeError> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| InvokeError::Handled(format!("the response body failed: {e}")))?
        .to_bytes();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let (text, base64) = match std::str::from_utf8(&body) {
        Ok(t) => (t.to_string(), false),
        Err(_) => {
            use base64::Engine as _;
            (base64::engine::general_purpose::STANDARD.encode(&body), true)
        }
    };
    let doc = serde_json::json!({
        "status": parts.status.as_u16(),
        "headers": headers,
        "body": text,
        "bodyBase64": base64,
    });
    Ok(Bytes::from(doc.to_string()))
}
