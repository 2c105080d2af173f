//! `wasmfc deploy`: builds what the manifest says to build, reads the
//! server, prints the plan (create / update / unchanged per resource), and
//! applies it through the FC API — so it works against any wasmfc, signed
//! when keys are given. Applying twice changes nothing the second time.

mod manifest;
mod plan;

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::client::{ClientArgs, FcClient};
pub use manifest::{Manifest, ManifestError};
use plan::{API, Action, Change, Step};

/// Apply a `wasmfc.toml` to a running server.
#[derive(Debug, clap::Args)]
pub struct DeployCommand {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The manifest.
    #[arg(short = 'f', long = "file", default_value = "wasmfc.toml")]
    pub file: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the manifest's build commands.
    #[arg(long)]
    pub no_build: bool,
}

/// Packages larger than this show an upload progress bar.
const PROGRESS_FROM: usize = 1 << 20;

impl DeployCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let (manifest, text) = Manifest::load(&self.file)?;
        let base = self.file.parent().map(Path::to_path_buf).unwrap_or_default();
        if !self.no_build && !self.dry_run {
            build(&manifest, &base)?;
        }
        manifest.check_code_paths(&self.file, &text)?;
        let client = FcClient::new(&self.client.resolve()?);
        let steps = plan::plan(&client, &manifest, &base).await?;
        print_plan(&steps);
        let pending = steps.iter().filter(|s| s.change != Change::Unchanged).count();
        if pending == 0 {
            println!("no changes: the server already matches {}", self.file.display());
            return Ok(());
        }
        if self.dry_run {
            println!("dry run: {pending} change(s) planned, nothing applied");
            return Ok(());
        }
        for step in steps.iter().filter(|s| s.change != Change::Unchanged) {
            apply(&client, step)
                .await
                .with_context(|| format!("applying {}", step.resource))?;
        }
        println!("applied {pending} change(s)");
        Ok(())
    }
}

/// Runs the manifest's build commands in its directory.
fn build(manifest: &Manifest, base: &Path) -> anyhow::Result<()> {
    for command in &manifest.build {
        println!("build: {command}");
        let dir = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(dir)
            .status()
            .with_context(|| format!("running `{command}`"))?;
        anyhow::ensure!(status.success(), "build command `{command}` failed ({status})");
    }
    Ok(())
}

fn print_plan(steps: &[Step]) {
    let width = steps.iter().map(|s| s.resource.len()).max().unwrap_or(0);
    for step in steps {
        let what = match &step.change {
            Change::Create => "create".to_string(),
            Change::Update(diffs) => format!("update ({})", diffs.join(", ")),
            Change::Unchanged => "unchanged".to_string(),
        };
        println!("  {:width$}  {what}", step.resource);
    }
}

async fn apply(client: &FcClient, step: &Step) -> anyhow::Result<()> {
    let create = step.change == Change::Create;
    match &step.action {
        Action::Service { name, body } => {
            let (method, path) = if create {
                (Method::POST, format!("{API}/services"))
            } else {
                (Method::PUT, format!("{API}/services/{name}"))
            };
            client.send(method, &path, &[], body.to_string()).await?;
        }
        Action::Function {
            service,
            name,
            body,
            code_bytes,
        } => {
            let (method, path) = if create {
                (Method::POST, format!("{API}/services/{service}/functions"))
            } else {
                (Method::PUT, format!("{API}/services/{service}/functions/{name}"))
            };
            let body = Bytes::from(Value::Object(body.clone()).to_string());
            if *code_bytes >= PROGRESS_FROM {
                client.send_with_progress(method, &path, body, &step.resource).await?;
            } else {
                client.send(method, &path, &[], body).await?;
            }
        }
        Action::AsyncConfig { path, body } => {
            client.send(Method::PUT, path, &[], body.to_string()).await?;
        }
        Action::Trigger {
            service,
            function,
            name,
            body,
        } => {
            let base = format!("{API}/services/{service}/functions/{function}/triggers");
            let (method, path) = if create {
                (Method::POST, base)
            } else {
                (Method::PUT, format!("{base}/{name}"))
            };
            client.send(method, &path, &[], body.to_string()).await?;
        }
        Action::Alias {
            service,
            name,
            version,
            publish,
            description,
        } => {
            let version = match (version, publish) {
                (Some(v), false) => v.to_string(),
                _ => {
                    let published = client
                        .send(
                            Method::POST,
                            &format!("{API}/services/{service}/versions"),
                            &[],
                            json!({ "description": "published by wasmfc deploy" }).to_string(),
                        )
                        .await?
                        .json()?;
                    let id = published["versionId"].as_str().unwrap_or_default().to_string();
                    println!("  published version {id} of {service}");
                    id
                }
            };
            let body = json!({ "aliasName": name, "versionId": version, "description": description });
            let (method, path) = if create {
                (Method::POST, format!("{API}/services/{service}/aliases"))
            } else {
                (Method::PUT, format!("{API}/services/{service}/aliases/{name}"))
            };
            client.send(method, &path, &[], body.to_string()).await?;
        }
        Action::Provision { path, target } => {
            client
                .send(Method::PUT, path, &[], json!({ "target": target }).to_string())
                .await?;
        }
    }
    Ok(())
}
