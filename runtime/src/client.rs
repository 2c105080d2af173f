//! A small FC client for the `wasmfc` subcommands that talk to a running
//! server (`tasks`, `bench`, `orchestrations`). Signs with the FC scheme,
//! exactly as `aliyun-fc2` does, when credentials are given.

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value;

use crate::api::auth::fc_authorization;

/// The server a client talks to when neither a flag, the environment nor
/// a profile names one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

/// Where the server is and how to sign for it: flags, then the
/// environment, then a profile (see [`ClientArgs::resolve`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Server URL [default: the profile's, else http://127.0.0.1:9000].
    #[arg(long, env = "WASMFC_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// Access key id (when the server requires signatures).
    #[arg(long, env = "WASMFC_ACCESS_KEY_ID", global = true)]
    pub access_key_id: Option<String>,
    /// Access key secret.
    #[arg(long, env = "WASMFC_ACCESS_KEY_SECRET", global = true, hide_env_values = true)]
    pub access_key_secret: Option<String>,
    /// A profile of the profile file (`$WASMFC_CONFIG`, else
    /// `~/.config/wasmfc/profiles.toml`): a table with `endpoint`,
    /// `access_key_id` and `access_key_secret`. `default` is used when the
    /// file has one and no profile is named.
    #[arg(long, env = "WASMFC_PROFILE", global = true)]
    pub profile: Option<String>,
}

/// One profile of the profile file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
}

impl ClientArgs {
    /// The profile file's path.
    fn profile_path() -> Option<std::path::PathBuf> {
        if let Some(p) = std::env::var_os("WASMFC_CONFIG") {
            return Some(p.into());
        }
        std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config/wasmfc/profiles.toml"))
    }

    /// Fills what flags and the environment left unset from the profile.
    /// A named profile that does not exist is an error; a missing file is
    /// not (unless a profile was named).
    pub fn resolve(&self) -> anyhow::Result<ClientArgs> {
        let path = Self::profile_path();
        let text = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        let name = self.profile.as_deref();
        let profile = match (&text, name) {
            (None, None) => Profile::default(),
            (None, Some(n)) => anyhow::bail!(
                "profile '{n}' asked for, but there is no profile file ({})",
                path.map_or("set WASMFC_CONFIG".into(), |p| p.display().to_string())
            ),
            (Some(text), name) => {
                let mut all: std::collections::BTreeMap<String, Profile> = toml::from_str(text).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: {e}",
                        path.as_ref().map_or(String::new(), |p| p.display().to_string())
                    )
                })?;
                match all.remove(name.unwrap_or("default")) {
                    Some(p) => p,
                    None if name.is_none() => Profile::default(),
                    None => anyhow::bail!("no profile '{}' in the profile file", name.unwrap_or_default()),
                }
            }
        };
        Ok(ClientArgs {
            endpoint: self.endpoint.clone().or(profile.endpoint),
            access_key_id: self.access_key_id.clone().or(profile.access_key_id),
            access_key_secret: self.access_key_secret.clone().or(profile.access_key_secret),
            profile: self.profile.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {endpoint}: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an FC error.
    #[error("{status} {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("the server answered with something that is not JSON: {0}")]
    NotJson(String),
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|_| ClientError::NotJson(String::from_utf8_lossy(&self.body).into()))
    }
}

#[derive(Debug, Clone)]
pub struct FcClient {
    base: String,
    credentials: Option<(String, String)>,
    http: reqwest::Client,
}

impl FcClient {
    pub fn new(args: &ClientArgs) -> FcClient {
        FcClient {
            base: args
                .endpoint
                .as_deref()
                .unwrap_or(DEFAULT_ENDPOINT)
                .trim_end_matches('/')
                .to_string(),
            credentials: args.access_key_id.clone().zip(args.access_key_secret.clone()),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request. `path` starts with the API prefix
    /// (`/2016-08-15/...`) and may carry a query; `headers` are extra
    /// request headers (`x-fc-*` ones are signed).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let body: Bytes = body.into();
        self.send_body(method, path, headers, reqwest::Body::from(body)).await
    }

    /// [`FcClient::send`] with any body (the FC signature does not cover
    /// the body, so a streamed one is signed the same way).
    async fn send_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: reqwest::Body,
    ) -> Result<Reply, ClientError> {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now())) {
            h.insert(http::header::DATE, v);
        }
        for (k, v) in headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(name, value);
            }
        }
        if let Some((ak, sk)) = &self.credentials {
            let raw_path = path.split('?').next().unwrap_or(path);
            let resource = percent_encoding::percent_decode_str(raw_path)
                .decode_utf8_lossy()
                .into_owned();
            let auth = fc_authorization(ak, sk, method.as_str(), &h, &resource);
            if let Ok(v) = HeaderValue::from_str(&auth) {
                h.insert(http::header::AUTHORIZATION, v);
            }
        }
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .headers(h)
            .body(body)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                endpoint: self.base.clone(),
                source,
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|source| ClientError::Transport {
            endpoint: self.base.clone(),
            source,
        })?;
        let reply = Reply { status, headers, body };
        if status.as_u16() >= 400 {
            let v = reply.json().unwrap_or_default();
            return Err(ClientError::Api {
                status,
                code: v["ErrorCode"].as_str().unwrap_or("").to_string(),
                // FC errors carry ErrorMessage; the orchestration API's
                // carry ExceptionMessage / Message.
                message: ["ErrorMessage", "ExceptionMessage", "Message"]
                    .iter()
                    .find_map(|k| v[*k].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned()),
            });
        }
        Ok(reply)
    }

    /// [`FcClient::send`] of a large body, with an upload progress bar on
    /// stderr (shown only on a terminal).
    pub async fn send_with_progress(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        label: &str,
    ) -> Result<Reply, ClientError> {
        const CHUNK: usize = 256 << 10;
        let bar = indicatif::ProgressBar::new(body.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("uploading {label}"));
        let chunks: Vec<Bytes> = (0..body.len())
            .step_by(CHUNK)
            .map(|at| body.slice(at..(at + CHUNK).min(body.len())))
            .collect();
        let counted = bar.clone();
        let stream = futures::stream::iter(chunks).map(move |chunk| {
            counted.inc(chunk.len() as u64);
            Ok::<_, std::convert::Infallible>(chunk)
        });
        let reply = self
            .send_body(method, path, &[], reqwest::Body::wrap_stream(stream))
            .await;
        bar.finish_and_clear();
        reply
    }

    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::GET, path, &[], Bytes::new()).await?.json()
    }
}
