//! The PostgreSQL store: the schema several wasmfc nodes share, and its
//! versioned migrations.
//!
//! The schema mirrors the embedded store's tables and adds what a cluster
//! needs: package bytes in the database (content-addressed, so any node can
//! load what any node uploaded), node membership rows, and a lease (owner,
//! expiry, fencing token) on every task and orchestration instance. See
//! docs/architecture.md, "Store".

mod leases;
mod migrate;
mod nodes;
mod registry;
mod tasks;

pub use leases::{Claim, claim_due, expire_leases, renew_leases};
pub use migrate::{MIGRATIONS, Migration, MigrationReport, migrate};
pub use nodes::{NodeRow, heartbeat, leave, live_nodes};
pub use registry::{apply_registry, load_registry, package, put_package};
pub use tasks::{Fence, QUEUES, get_task, insert_task, queue_of, task_events, transition};

use std::time::Duration;

use super::{Result, StoreError};

/// How long a connection attempt may take before the store is reported
/// unreachable (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// True when `url` names a PostgreSQL store.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens one connection to the store at `url`; the connection's I/O runs on
/// a spawned task until the client is dropped.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}
