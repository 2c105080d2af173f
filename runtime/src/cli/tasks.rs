//! `wasmfc tasks`: list, inspect, stop, re-run and read the logs of tasks on
//! a running server, one at a time or every task a filter matches.

use bytes::Bytes;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use http::Method;
use serde_json::Value;

use crate::client::{ClientArgs, FcClient};

/// Manage tasks (stateful async invocations) on a running server.
#[derive(Debug, clap::Args)]
pub struct TasksCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub action: TasksAction,
}

/// Which function's tasks.
#[derive(Debug, Clone, clap::Args)]
pub struct FunctionRef {
    /// Service name (FC 2.0). Without it, --function is an FC 3.0 function
    /// name: `f`, or `service$function` for a 2.0 function.
    #[arg(short, long)]
    pub service: Option<String>,
    /// Function name.
    #[arg(short, long)]
    pub function: String,
    /// Qualifier (LATEST, a version or an alias).
    #[arg(short, long)]
    pub qualifier: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl FunctionRef {
    /// (service, function): as given, or the FC 3.0 name's.
    fn address(&self) -> (&str, &str) {
        match &self.service {
            Some(service) => (service, &self.function),
            None => self
                .function
                .split_once('$')
                .unwrap_or((&self.function, &self.function)),
        }
    }

    fn path(&self, rest: &str) -> String {
        let (service, function) = self.address();
        let svc = match &self.qualifier {
            Some(q) => format!("{service}.{q}"),
            None => service.to_string(),
        };
        format!("/2016-08-15/services/{svc}/functions/{function}/stateful-async-invocations{rest}")
    }
}

/// Which of a function's tasks (the list filters).
#[derive(Debug, Clone, clap::Args)]
pub struct TaskFilterArgs {
    /// Only tasks in this state (Running, Failed, ...).
    #[arg(long)]
    pub status: Option<String>,
    /// Only ids starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
}

impl TaskFilterArgs {
    fn query(&self) -> Vec<String> {
        let mut q = Vec::new();
        if let Some(s) = &self.status {
            q.push(format!("status={s}"));
        }
        if let Some(p) = &self.prefix {
            q.push(format!("invocationIdPrefix={p}"));
        }
        q
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum TasksAction {
    /// List tasks, newest first.
    List {
        #[command(flatten)]
        function: FunctionRef,
        #[command(flatten)]
        filter: TaskFilterArgs,
        /// Tasks per page (1-100).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Follow nextToken through every page.
        #[arg(long)]
        all: bool,
        /// Oldest first.
        #[arg(long)]
        asc: bool,
    },
    /// Show one task with its history.
    Get {
        #[command(flatten)]
        function: FunctionRef,
        id: String,
    },
    /// Stop a task (a running one is interrupted).
    Stop {
        #[command(flatten)]
        function: FunctionRef,
        id: String,
    },
    /// Submit a new task with the same payload.
    Rerun {
        #[command(flatten)]
        function: FunctionRef,
        id: String,
    },
    /// Print a task's captured output.
    Logs {
        #[command(flatten)]
        function: FunctionRef,
        id: String,
    },
    /// Stop every unfinished task the filter matches.
    StopMatching {
        #[command(flatten)]
        function: FunctionRef,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Re-run every finished task the filter matches (e.g. --status Failed).
    RerunMatching {
        #[command(flatten)]
        function: FunctionRef,
        #[command(flatten)]
        bulk: BulkArgs,
    },
}

/// A bulk action's filter and bounds.
#[derive(Debug, Clone, clap::Args)]
pub struct BulkArgs {
    #[command(flatten)]
    pub filter: TaskFilterArgs,
    /// Only count the tasks that would be touched.
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many tasks (1-10000).
    #[arg(long, default_value_t = 1000)]
    pub max: u32,
}

/// Runs `...:stop` or `...:rerun` and prints a line per task.
async fn bulk(client: &FcClient, function: &FunctionRef, action: &str, args: &BulkArgs) -> anyhow::Result<()> {
    let mut q = args.filter.query();
    q.push(format!("maxTasks={}", args.max));
    if args.dry_run {
        q.push("dryRun=true".into());
    }
    let path = function.path(&format!(":{action}?{}", q.join("&")));
    let out: Value = client.send(Method::POST, &path, &[], Bytes::new()).await?.json()?;
    if function.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for r in out["results"].as_array().into_iter().flatten() {
        println!("{}: {}", r["invocationId"].as_str().unwrap_or("?"), r["result"]);
    }
    let verb = if args.dry_run { "would touch" } else { "touched" };
    let more = if out["truncated"] == true {
        " (more matched: raise --max)"
    } else {
        ""
    };
    println!("{action}: {verb} {} task(s){more}", out["matched"]);
    Ok(())
}

fn ms_to_iso(v: &Value) -> String {
    match v.as_i64() {
        Some(0) | None => "-".into(),
        Some(ms) => crate::util::iso_ms(ms),
    }
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > n {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    } else {
        one_line
    }
}

fn table_of(tasks: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["ID", "STATUS", "STARTED", "DURATION", "RETRIES", "ERROR"]);
    for task in tasks {
        t.add_row([
            task["invocationId"].as_str().unwrap_or("").to_string(),
            task["status"].as_str().unwrap_or("").to_string(),
            ms_to_iso(&task["startedTime"]),
            format!("{} ms", task["durationMs"].as_i64().unwrap_or(0)),
            task["alreadyRetriedTimes"].to_string(),
            short(task["invocationErrorMessage"].as_str().unwrap_or(""), 60),
        ]);
    }
    t
}

fn print_task(task: &Value) {
    println!("{}", table_of(std::slice::from_ref(task)));
    if let Some(events) = task["events"].as_array() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(["#", "EVENT", "TIME", "DETAIL"]);
        for e in events {
            t.add_row([
                e["eventId"].to_string(),
                e["status"].as_str().unwrap_or("").to_string(),
                ms_to_iso(&e["timestamp"]),
                short(e["eventDetail"].as_str().unwrap_or(""), 80),
            ]);
        }
        println!("{t}");
    }
    let ret = task["returnPayload"].as_str().unwrap_or("");
    if !ret.is_empty() {
        println!("result: {}", short(ret, 400));
    }
}

impl TasksCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = FcClient::new(&self.client.resolve()?);
        match self.action {
            TasksAction::List {
                function,
                filter,
                limit,
                all,
                asc,
            } => {
                let mut collected = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let mut q = vec![
                        format!("limit={limit}"),
                        format!("sortOrderByTime={}", if asc { "asc" } else { "desc" }),
                    ];
                    q.extend(filter.query());
                    if let Some(t) = &token {
                        q.push(format!("nextToken={t}"));
                    }
                    let page = client.get_json(&function.path(&format!("?{}", q.join("&")))).await?;
                    collected.extend(page["invocations"].as_array().cloned().unwrap_or_default());
                    token = page["nextToken"].as_str().map(str::to_string);
                    if !all || token.is_none() {
                        break;
                    }
                }
                if function.json {
                    println!("{}", serde_json::to_string_pretty(&collected)?);
                } else {
                    println!("{}", table_of(&collected));
                    if let Some(t) = token {
                        println!("more: --all, or nextToken={t}");
                    }
                }
            }
            TasksAction::Get { function, id } => {
                let task = client.get_json(&function.path(&format!("/{id}"))).await?;
                if function.json {
                    println!("{}", serde_json::to_string_pretty(&task)?);
                } else {
                    print_task(&task);
                }
            }
            TasksAction::Stop { function, id } => {
                let task = client
                    .send(Method::PUT, &function.path(&format!("/{id}")), &[], Bytes::new())
                    .await?
                    .json()?;
                if function.json {
                    println!("{}", serde_json::to_string_pretty(&task)?);
                } else {
                    println!("{id}: {}", task["status"].as_str().unwrap_or("?"));
                }
            }
            TasksAction::Rerun { function, id } => {
                let task = client
                    .send(Method::POST, &function.path(&format!("/{id}/rerun")), &[], Bytes::new())
                    .await?
                    .json()?;
                if function.json {
                    println!("{}", serde_json::to_string_pretty(&task)?);
                } else {
                    println!("re-run of {id}: {}", task["invocationId"].as_str().unwrap_or("?"));
                }
            }
            TasksAction::StopMatching { function, bulk: args } => bulk(&client, &function, "stop", &args).await?,
            TasksAction::RerunMatching { function, bulk: args } => bulk(&client, &function, "rerun", &args).await?,
            TasksAction::Logs { function, id } => {
                let logs = client.get_json(&function.path(&format!("/{id}/logs"))).await?;
                if function.json {
                    println!("{}", serde_json::to_string_pretty(&logs)?);
                } else {
                    print!("{}", logs["logs"].as_str().unwrap_or(""));
                }
            }
        }
        Ok(())
    }
}
