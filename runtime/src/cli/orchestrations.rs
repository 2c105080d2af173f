//! `wasmfc orchestrations`: start, inspect, list, signal and clean up
//! orchestration instances on a running server, through its Durable
//! Functions instance API.

use bytes::Bytes;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use http::Method;
use serde_json::Value;

use crate::client::{ClientArgs, ClientError, FcClient};

const ROOT: &str = "/runtime/webhooks/durabletask";

/// Manage orchestration instances on a running server.
#[derive(Debug, clap::Args)]
pub struct OrchestrationsCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: OrchestrationsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum OrchestrationsAction {
    /// Start an orchestrator (`function` or `service.function`).
    Start {
        orchestrator: String,
        /// Instance id (default: a fresh GUID).
        #[arg(long)]
        id: Option<String>,
        /// Input, as JSON.
        #[arg(long)]
        input: Option<String>,
        /// Wait up to this many seconds for it to finish.
        #[arg(long)]
        wait: Option<f64>,
    },
    /// Show an instance (with its history on --history).
    Status {
        id: String,
        #[arg(long)]
        history: bool,
    },
    /// List instances, oldest first.
    List {
        /// Only these statuses (comma-separated: Running,Completed,...).
        #[arg(long)]
        status: Option<String>,
        /// Only ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Created at or after (ISO 8601).
        #[arg(long)]
        from: Option<String>,
        /// Created at or before (ISO 8601).
        #[arg(long)]
        to: Option<String>,
        /// Instances per page.
        #[arg(long, default_value_t = 100)]
        top: u32,
        /// Follow the continuation token through every page.
        #[arg(long)]
        all: bool,
    },
    /// Raise an event (data as JSON).
    Raise {
        id: String,
        event: String,
        #[arg(default_value = "null")]
        data: String,
    },
    /// Terminate a running instance (its running activities are stopped).
    Terminate {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Rewind a Failed instance: re-run only its failed steps.
    Rewind {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Suspend a running instance.
    Suspend {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a suspended instance.
    Resume {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Delete an instance and its history, or (with --from) every finished
    /// instance created in a time range.
    Purge {
        id: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Only these finished statuses (comma-separated).
        #[arg(long)]
        status: Option<String>,
    },
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(s: String, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s
    }
}

fn table_of(instances: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["ID", "NAME", "STATUS", "CREATED", "UPDATED", "CUSTOM STATUS", "OUTPUT"]);
    for i in instances {
        t.add_row([
            text(&i["instanceId"]),
            text(&i["name"]),
            text(&i["runtimeStatus"]),
            text(&i["createdTime"]),
            text(&i["lastUpdatedTime"]),
            short(text(&i["customStatus"]), 40),
            short(text(&i["output"]), 60),
        ]);
    }
    t
}

/// An acknowledgement (202 with no body) or the error the server gave.
fn acknowledged(id: &str, what: &str, r: Result<crate::client::Reply, ClientError>) -> anyhow::Result<()> {
    match r {
        Ok(_) => {
            println!("{id}: {what}");
            Ok(())
        }
        Err(ClientError::Api { status, message, .. }) => {
            let why = match status.as_u16() {
                404 => format!("no instance with id '{id}'"),
                410 => format!("instance '{id}' has already finished"),
                _ if message.is_empty() => format!("server answered {status}"),
                _ => message,
            };
            anyhow::bail!("{why}")
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST instances/{id}/{op}?reason=`: terminate, rewind, suspend, resume.
async fn operation(client: &FcClient, id: &str, op: &str, reason: &str) -> anyhow::Result<()> {
    let path = format!("{ROOT}/instances/{}/{op}?reason={}", enc(id), enc(reason));
    let reply = client.send(Method::POST, &path, &[], Bytes::new()).await;
    acknowledged(id, &format!("{op} requested"), reply)
}

impl OrchestrationsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = FcClient::new(&self.client.resolve()?);
        let json = self.json;
        let print = |v: &Value| -> anyhow::Result<()> {
            if json {
                println!("{}", serde_json::to_string_pretty(v)?);
            } else {
                println!("{}", table_of(std::slice::from_ref(v)));
            }
            Ok(())
        };
        match self.action {
            OrchestrationsAction::Start {
                orchestrator,
                id,
                input,
                wait,
            } => {
                let mut path = format!("{ROOT}/orchestrators/{}", enc(&orchestrator));
                if let Some(id) = &id {
                    path.push_str(&format!("/{}", enc(id)));
                }
                if let Some(w) = wait {
                    path.push_str(&format!("?timeout={w}&pollingInterval={}", (w / 10.0).min(1.0)));
                }
                let body = Bytes::from(input.unwrap_or_default());
                let r = client.send(Method::POST, &path, &[], body).await?;
                let v = r.json()?;
                if r.status.as_u16() == 202 {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        println!("started {}", text(&v["id"]));
                        println!("status: {}", text(&v["statusQueryGetUri"]));
                    }
                } else if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("finished: {}", text(&v));
                }
            }
            OrchestrationsAction::Status { id, history } => {
                let q = if history {
                    "?showHistory=true&showHistoryOutput=true"
                } else {
                    ""
                };
                let v = match client.get_json(&format!("{ROOT}/instances/{}{q}", enc(&id))).await {
                    Err(ClientError::Api { status, .. }) if status.as_u16() == 404 => {
                        anyhow::bail!("no instance with id '{id}'")
                    }
                    other => other?,
                };
                print(&v)?;
                if !json && let Some(events) = v["historyEvents"].as_array() {
                    let mut t = Table::new();
                    t.load_preset(UTF8_FULL_CONDENSED);
                    t.set_header(["EVENT", "TIME", "DETAIL"]);
                    for e in events {
                        let mut detail = serde_json::Map::new();
                        for (k, val) in e.as_object().into_iter().flatten() {
                            if k != "EventType" && k != "Timestamp" {
                                detail.insert(k.clone(), val.clone());
                            }
                        }
                        t.add_row([
                            text(&e["EventType"]),
                            text(&e["Timestamp"]),
                            short(Value::Object(detail).to_string(), 90),
                        ]);
                    }
                    println!("{t}");
                }
            }
            OrchestrationsAction::List {
                status,
                prefix,
                from,
                to,
                top,
                all,
            } => {
                let mut q = vec![format!("top={top}")];
                for (k, v) in [
                    ("runtimeStatus", &status),
                    ("instanceIdPrefix", &prefix),
                    ("createdTimeFrom", &from),
                    ("createdTimeTo", &to),
                ] {
                    if let Some(v) = v {
                        q.push(format!("{k}={}", enc(v)));
                    }
                }
                let path = format!("{ROOT}/instances?{}", q.join("&"));
                let mut collected = Vec::new();
                let mut token = String::new();
                loop {
                    let headers: Vec<(&str, &str)> = if token.is_empty() {
                        Vec::new()
                    } else {
                        vec![("x-ms-continuation-token", token.as_str())]
                    };
                    let r = client.send(Method::GET, &path, &headers, Bytes::new()).await?;
                    collected.extend(r.json()?.as_array().cloned().unwrap_or_default());
                    token = r
                        .headers
                        .get("x-ms-continuation-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    if !all || token.is_empty() {
                        break;
                    }
                }
                if json {
                    println!("{}", serde_json::to_string_pretty(&collected)?);
                } else {
                    println!("{}", table_of(&collected));
                    if !token.is_empty() {
                        println!("more instances: use --all");
                    }
                }
            }
            OrchestrationsAction::Raise { id, event, data } => {
                let path = format!("{ROOT}/instances/{}/raiseEvent/{}", enc(&id), enc(&event));
                let r = client.send(Method::POST, &path, &[], Bytes::from(data)).await;
                acknowledged(&id, &format!("event '{event}' raised"), r)?;
            }
            OrchestrationsAction::Terminate { id, reason } => operation(&client, &id, "terminate", &reason).await?,
            OrchestrationsAction::Rewind { id, reason } => operation(&client, &id, "rewind", &reason).await?,
            OrchestrationsAction::Suspend { id, reason } => operation(&client, &id, "suspend", &reason).await?,
            OrchestrationsAction::Resume { id, reason } => operation(&client, &id, "resume", &reason).await?,
            OrchestrationsAction::Purge { id, from, to, status } => {
                let path = match (&id, &from) {
                    (Some(id), _) => format!("{ROOT}/instances/{}", enc(id)),
                    (None, Some(from)) => {
                        let mut q = vec![format!("createdTimeFrom={}", enc(from))];
                        if let Some(to) = &to {
                            q.push(format!("createdTimeTo={}", enc(to)));
                        }
                        if let Some(s) = &status {
                            q.push(format!("runtimeStatus={}", enc(s)));
                        }
                        format!("{ROOT}/instances?{}", q.join("&"))
                    }
                    (None, None) => anyhow::bail!("name an instance, or give --from to purge by time range"),
                };
                let deleted = match client.send(Method::DELETE, &path, &[], Bytes::new()).await {
                    Ok(r) => r.json()?["instancesDeleted"].as_u64().unwrap_or(0),
                    Err(ClientError::Api { status, .. }) if status.as_u16() == 404 => 0,
                    Err(e) => return Err(e.into()),
                };
                println!("instances deleted: {deleted}");
            }
        }
        Ok(())
    }
}
