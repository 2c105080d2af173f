//! `wasmfc migrate`: creates or upgrades a PostgreSQL store's schema.
//!
//! Operators run it before rolling out a new wasmfc (as `river migrate-up`
//! or `hatchet-admin migrate`); it is safe to run from several machines at
//! once, since migrations queue on an advisory lock.

use anyhow::{Context, bail};

use crate::store::postgres;

/// Create or upgrade a PostgreSQL store's schema.
#[derive(Debug, clap::Args)]
pub struct MigrateCommand {
    /// The store: a `postgres://user@host:port/database` URL.
    #[arg(long, env = "WASMFC_STORE")]
    pub store: String,
}

impl MigrateCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        if !postgres::is_postgres_url(&self.store) {
            bail!("--store takes a postgres:// URL (the embedded SQLite store migrates itself on open)");
        }
        let mut client = postgres::connect(&self.store)
            .await
            .context("connecting to the store")?;
        let report = postgres::migrate(&mut client).await.context("migrating the store")?;
        match report.applied.as_slice() {
            [] => println!("schema at version {}: up to date", report.version),
            applied => {
                let names: Vec<String> = applied
                    .iter()
                    .filter_map(|v| postgres::MIGRATIONS.iter().find(|m| m.version == *v))
                    .map(|m| format!("{:04}_{}", m.version, m.name))
                    .collect();
                println!("schema at version {}: applied {}", report.version, names.join(", "));
            }
        }
        Ok(())
    }
}
