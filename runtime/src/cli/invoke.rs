//! `wasmfc invoke` and `wasmfc logs`: calling a function and reading what
//! it logged, from a shell.
//!
//! Exit codes: 0 when the function succeeded (or a task was accepted), 1
//! when the function itself failed (its error on stderr), 2 for usage and
//! API errors — so `wasmfc invoke ... && next-step` does what it reads as.

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::GuestFailed;
use crate::client::{ClientArgs, FcClient};

/// `SERVICE/FUNCTION`, or an FC 3.0 name (`f`, `service$function`).
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub function: String,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        let (service, function) = match s.split_once('/') {
            Some(pair) => pair,
            None => s.split_once('$').unwrap_or((s, s)),
        };
        if service.is_empty() || function.is_empty() || function.contains('/') {
            return Err(format!("'{s}' is not SERVICE/FUNCTION (or an FC 3.0 function name)"));
        }
        Ok(Target {
            service: service.into(),
            function: function.into(),
        })
    }
}

impl Target {
    fn path(&self, qualifier: Option<&str>, rest: &str) -> String {
        let svc = match qualifier {
            Some(q) => format!("{}.{q}", self.service),
            None => self.service.clone(),
        };
        format!("/2016-08-15/services/{svc}/functions/{}{rest}", self.function)
    }
}

/// Invoke a function: print its result (sync) or its task id (async).
#[derive(Debug, clap::Args)]
pub struct InvokeCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    /// SERVICE/FUNCTION (or an FC 3.0 function name).
    pub target: Target,
    /// The event: text, `@file`, or `-` for stdin (default: empty).
    #[arg(short, long, default_value = "")]
    pub data: String,
    /// Run asynchronously (a task when the function is in task mode or
    /// `--id` is given).
    #[arg(long = "async")]
    pub run_async: bool,
    /// The task id (async only).
    #[arg(long, requires = "run_async")]
    pub id: Option<String>,
    /// Seconds before the task may run (async only; 0-3600).
    #[arg(long, requires = "run_async")]
    pub delay: Option<u64>,
    /// LATEST, a version or an alias.
    #[arg(short, long)]
    pub qualifier: Option<String>,
    /// Print the invocation's log (its last 4 KB) on stderr.
    #[arg(long)]
    pub tail: bool,
    /// Print one JSON object (status, headers, result, log) instead.
    #[arg(long)]
    pub json: bool,
}

fn read_data(data: &str) -> anyhow::Result<Bytes> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        return Ok(buf.into());
    }
    if let Some(path) = data.strip_prefix('@') {
        return std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| anyhow::anyhow!("reading --data @{path}: {e}"));
    }
    Ok(Bytes::from(data.to_string()))
}

impl InvokeCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = FcClient::new(&self.client.resolve()?);
        let body = read_data(&self.data)?;
        let delay = self.delay.map(|d| d.to_string());
        let mut headers = vec![("x-fc-invocation-type", if self.run_async { "Async" } else { "Sync" })];
        if self.tail {
            headers.push(("x-fc-log-type", "Tail"));
        }
        if let Some(id) = &self.id {
            headers.push(("x-fc-stateful-async-invocation-id", id));
            headers.push(("x-fc-stateful-async-invocation-enable", "true"));
        }
        if let Some(d) = &delay {
            headers.push(("x-fc-async-delay", d));
        }
        let path = self.target.path(self.qualifier.as_deref(), "/invocations");
        let reply = client.send(Method::POST, &path, &headers, body).await?;
        let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok());
        if self.run_async {
            let task = header("x-fc-stateful-async-invocation-id");
            if self.json {
                println!("{}", json!({ "status": reply.status.as_u16(), "taskId": task }));
            } else {
                println!(
                    "{}",
                    task.unwrap_or("accepted (not a task: the function is not in task mode)")
                );
            }
            return Ok(());
        }
        let log = header("x-fc-log-result")
            .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let error_type = header("x-fc-error-type").map(str::to_string);
        let result = String::from_utf8_lossy(&reply.body).into_owned();
        if self.json {
            let facts: serde_json::Map<String, Value> = reply
                .headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-fc-") && k.as_str() != "x-fc-log-result")
                .filter_map(|(k, v)| Some((k.to_string(), json!(v.to_str().ok()?))))
                .collect();
            println!(
                "{}",
                json!({ "status": reply.status.as_u16(), "headers": facts, "result": result, "log": log })
            );
        } else {
            if let Some(log) = &log {
                eprint!("{log}");
            }
            if error_type.is_none() {
                println!("{result}");
            } else {
                eprintln!("{result}");
            }
        }
        match error_type {
            Some(kind) => Err(GuestFailed(format!("{kind}: {result}")).into()),
            None => Ok(()),
        }
    }
}

/// Print a task's log (the latest task's without `--task`).
#[derive(Debug, clap::Args)]
pub struct LogsCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    /// SERVICE/FUNCTION (or an FC 3.0 function name).
    pub target: Target,
    /// The task (default: the function's most recent task).
    #[arg(long)]
    pub task: Option<String>,
    /// Keep printing what the task logs until it ends.
    #[arg(long)]
    pub follow: bool,
    /// Print the server's JSON instead.
    #[arg(long)]
    pub json: bool,
}

const TASKS: &str = "/stateful-async-invocations";

/// How often `--follow` reads the log again.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);

impl LogsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = FcClient::new(&self.client.resolve()?);
        let id = match &self.task {
            Some(id) => id.clone(),
            None => {
                let page = client
                    .get_json(&self.target.path(None, &format!("{TASKS}?limit=1&sortOrderByTime=desc")))
                    .await?;
                page["invocations"][0]["invocationId"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow::anyhow!("{}/{} has no tasks", self.target.service, self.target.function))?
            }
        };
        let path = self.target.path(None, &format!("{TASKS}/{id}/logs"));
        let mut printed = 0;
        loop {
            let logs = client.get_json(&path).await?;
            if self.json {
                println!("{}", serde_json::to_string_pretty(&logs)?);
                return Ok(());
            }
            let text = logs["logs"].as_str().unwrap_or("");
            // The stored log only grows while the task runs.
            print!("{}", text.get(printed..).unwrap_or(text));
            printed = text.len();
            let running = logs["status"]
                .as_str()
                .and_then(crate::tasks::TaskState::parse)
                .is_some_and(|s| !s.is_terminal());
            if !self.follow || !running {
                return Ok(());
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn a_target_is_service_slash_function_or_an_fc3_name() {
        let t: Target = "svc/fn".parse().unwrap();
        assert_eq!((t.service.as_str(), t.function.as_str()), ("svc", "fn"));
        let t: Target = "nap".parse().unwrap();
        assert_eq!((t.service.as_str(), t.function.as_str()), ("nap", "nap"));
        let t: Target = "svc$fn".parse().unwrap();
        assert_eq!((t.service.as_str(), t.function.as_str()), ("svc", "fn"));
        for bad in ["", "/fn", "svc/", "a/b/c"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
