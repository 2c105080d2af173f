//! The `wasmfc` command line.

pub mod serve;

use clap::{Parser, Subcommand};

/// wasmfc: a self-hosted WebAssembly function runtime, wire-compatible with
/// Alibaba Cloud Function Compute 2.0.
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
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(cmd) => cmd.run().await,
        }
    }
}
