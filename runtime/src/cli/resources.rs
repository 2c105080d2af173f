//! `wasmfc functions list|get|delete` and `wasmfc services list`: what a
//! server holds, as tables (or the server's JSON with `--json`).

use bytes::Bytes;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use http::Method;
use serde_json::Value;

use super::invoke::Target;
use crate::client::{ClientArgs, FcClient};

/// Functions of a service.
#[derive(Debug, clap::Args)]
pub struct FunctionsCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub action: FunctionsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum FunctionsAction {
    /// List a service's functions.
    List {
        service: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one function.
    Get {
        /// SERVICE/FUNCTION (or an FC 3.0 function name).
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Delete a function (its triggers and configs with it).
    Delete {
        /// SERVICE/FUNCTION (or an FC 3.0 function name).
        target: Target,
    },
}

/// Services of the server.
#[derive(Debug, clap::Args)]
pub struct ServicesCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub action: ServicesAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServicesAction {
    /// List the services.
    List {
        #[arg(long)]
        json: bool,
    },
}

const API: &str = "/2016-08-15";

/// Every item of a paged list (`{<field>: [...], nextToken}`).
async fn all_pages(client: &FcClient, path: &str, field: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page_path = match &token {
            Some(t) => format!("{path}?limit=100&nextToken={t}"),
            None => format!("{path}?limit=100"),
        };
        let page = client.get_json(&page_path).await?;
        items.extend(page[field].as_array().cloned().unwrap_or_default());
        token = page["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            return Ok(items);
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn functions_table(functions: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["NAME", "KIND", "MEMORY", "TIMEOUT", "CODE", "MODIFIED"]);
    for f in functions {
        t.add_row([
            text(&f["functionName"]),
            text(&f["wasmfc"]["guestKind"]),
            format!("{} MB", text(&f["memorySize"])),
            format!("{} s", text(&f["timeout"])),
            format!("{} B", text(&f["codeSize"])),
            text(&f["lastModifiedTime"]),
        ]);
    }
    t
}

impl FunctionsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = FcClient::new(&self.client.resolve()?);
        match self.action {
            FunctionsAction::List { service, json } => {
                let functions = all_pages(&client, &format!("{API}/services/{service}/functions"), "functions").await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&functions)?);
                } else {
                    println!("{}", functions_table(&functions));
                }
            }
            FunctionsAction::Get { target, json } => {
                let path = format!("{API}/services/{}/functions/{}", target.service, target.function);
                let f = client.get_json(&path).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&f)?);
                } else {
                    println!("{}", functions_table(std::slice::from_ref(&f)));
                    let env = f["environmentVariables"].as_object().cloned().unwrap_or_default();
                    for (k, v) in env {
                        println!("env {k}={}", text(&v));
                    }
                }
            }
            FunctionsAction::Delete { target } => {
                let path = format!("{API}/services/{}/functions/{}", target.service, target.function);
                client.send(Method::DELETE, &path, &[], Bytes::new()).await?;
                println!("deleted {}/{}", target.service, target.function);
            }
        }
        Ok(())
    }
}

impl ServicesCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = FcClient::new(&self.client.resolve()?);
        match self.action {
            ServicesAction::List { json } => {
                let services = all_pages(&client, &format!("{API}/services"), "services").await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&services)?);
                    return Ok(());
                }
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(["NAME", "DESCRIPTION", "MODIFIED"]);
                for s in &services {
                    t.add_row([
                        text(&s["serviceName"]),
                        text(&s["description"]),
                        text(&s["lastModifiedTime"]),
                    ]);
                }
                println!("{t}");
            }
        }
        Ok(())
    }
}
