//! The `wasmfc` command line.

pub mod bench;
pub mod deploy;
pub mod invoke;
pub mod migrate;
pub mod orchestrations;
pub mod resources;
pub mod serve;
pub mod tasks;
mod wiring;

use clap::{Parser, Subcommand};

/// wasmfc: a self-hosted WebAssembly function runtime, wire-compatible with
/// Alibaba Cloud Function Compute 2.0 and 3.0.
#[derive(Debug, Parser)]
#[command(name = "wasmfc", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeCommand),
    /// Manage tasks (stateful async invocations) on a running server.
    Tasks(tasks::TasksCommand),
    /// Manage orchestration instances on a running server.
    Orchestrations(orchestrations::OrchestrationsCommand),
    /// Apply a wasmfc.toml manifest to a running server.
    Deploy(deploy::DeployCommand),
    /// Invoke a function (sync, or async / as a task).
    Invoke(invoke::InvokeCommand),
    /// Print a task's log.
    Logs(invoke::LogsCommand),
    /// List, show or delete functions.
    Functions(resources::FunctionsCommand),
    /// List services.
    Services(resources::ServicesCommand),
    /// Run a benchmark (starts its own servers).
    Bench(bench::BenchCommand),
    /// Create or upgrade a PostgreSQL store's schema.
    Migrate(migrate::MigrateCommand),
}

/// The invoked guest failed (its error was printed): exit code 1, apart
/// from usage and API errors (2).
#[derive(Debug, thiserror::Error)]
#[error("the function failed: {0}")]
pub struct GuestFailed(pub String);

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(cmd) => cmd.run().await,
            Command::Tasks(cmd) => cmd.run().await,
            Command::Orchestrations(cmd) => cmd.run().await,
            Command::Deploy(cmd) => cmd.run().await,
            Command::Invoke(cmd) => cmd.run().await,
            Command::Logs(cmd) => cmd.run().await,
            Command::Functions(cmd) => cmd.run().await,
            Command::Services(cmd) => cmd.run().await,
            Command::Bench(cmd) => cmd.run().await,
            Command::Migrate(cmd) => cmd.run().await,
        }
    }
}
