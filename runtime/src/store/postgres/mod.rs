//! The shared store: a PostgreSQL database several wasmfc nodes use at
//! once, with the same domain operations as the embedded store.
//!
//! The schema mirrors the embedded store's tables and adds what a cluster
//! needs: code bytes in the database (content-addressed, so any node can
//! load what any node uploaded), node membership rows, and a lease (owner,
//! expiry, fencing token) on every task and orchestration instance. Where
//! SQLite's single writer thread makes a read-decide-write atomic, here the
//! row is locked (`SELECT … FOR UPDATE`) for the transaction. Connections
//! come from a pool (`deadpool-postgres`) whose waits are bounded, so a
//! database that is down answers [`StoreError::Unavailable`] instead of
//! hanging. See docs/architecture.md, "Store".

mod durable;
mod leases;
mod log_budget;
mod migrate;
mod nodes;
mod notify;
mod orch_control;
mod orch_leases;
mod orch_recover;
mod registry;
mod task_batch;
mod task_columns;
mod task_list;
mod task_writer;
mod tasks;

pub use leases::{AgeLimits, Claim, ClaimRequest, Lapsed};
pub use migrate::{MIGRATIONS, Migration, MigrationReport, migrate};
pub use nodes::{NodeRow, heartbeat, leave, live_nodes};
pub use notify::{Notification, REGISTRY_CHANNEL, STOP_CHANNEL, TASKS_CHANNEL};
pub use registry::{apply_registry, load_registry, package, put_package};
pub use tasks::{QUEUES, get_task, queue_of, task_events};

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::sync::broadcast;

use super::changes::{self, TaskChange};
use super::log_budget::LogBudget;
use super::{DEFAULT_LOG_BUDGET, Result, StoreError};

/// How long a connection attempt may take before the store is reported
/// unreachable (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection before it is told the
/// store is unavailable.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Connections one node keeps at most.
const POOL_SIZE: usize = 16;

/// True when `url` names a PostgreSQL store.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn config_of(url: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// Opens one connection to the store at `url`; the connection's I/O runs on
/// a spawned task until the client is dropped.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = config_of(url)?.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The URL of database `name` on the server `url` points at.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// Creates database `name` on the server of `admin_url` (a benchmark's
/// scratch database) and answers its URL.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
    let client = connect(admin_url).await?;
    client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await?;
    Ok(database_url(admin_url, name))
}

/// Drops database `name` on the server of `admin_url`, closing its
/// connections.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let client = connect(admin_url).await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    Ok(())
}

/// The shared store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    url: String,
    log_budget: Arc<LogBudget>,
    task_changes: broadcast::Sender<TaskChange>,
    /// Task inserts and transitions, group-committed.
    writer: task_writer::TaskWriter,
}

impl PgStore {
    /// Connects to `url`, brings its schema up to date (safe when several
    /// nodes start at once) and opens the pool.
    pub async fn open(url: &str) -> Result<PgStore> {
        let config = config_of(url)?;
        let mut client = connect(url).await?;
        migrate(&mut client).await?;
        let used = log_budget::measure_logs(&client).await?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let log_budget = Arc::new(LogBudget::new(DEFAULT_LOG_BUDGET, used));
        let task_changes = broadcast::channel(changes::CAPACITY).0;
        let writer = task_writer::TaskWriter::start(pool.clone(), log_budget.clone(), task_changes.clone());
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                url: url.to_string(),
                log_budget,
                task_changes,
                writer,
            }),
        })
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// A pooled connection, or [`StoreError::Unavailable`] once the wait
    /// for one has passed.
    pub(super) async fn client(&self) -> Result<Object> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub fn set_log_budget(&self, bytes: u64) {
        self.inner.log_budget.set_limit(bytes);
    }

    pub fn log_bytes(&self) -> u64 {
        self.inner.log_budget.used()
    }

    pub fn task_changes(&self) -> broadcast::Receiver<TaskChange> {
        self.inner.task_changes.subscribe()
    }

    /// Publishes changes a committed transaction made.
    fn publish(&self, committed: Vec<TaskChange>) {
        if self.inner.task_changes.receiver_count() > 0 {
            for change in committed {
                let _ = self.inner.task_changes.send(change);
            }
        }
    }

    pub async fn meta_get_or_insert(&self, key: &str, make: impl FnOnce() -> String) -> Result<String> {
        let client = self.client().await?;
        let candidate = make();
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &candidate],
            )
            .await?;
        Ok(client
            .query_one("SELECT value FROM meta WHERE key = $1", &[&key])
            .await?
            .get(0))
    }

    pub async fn load_registry(&self) -> Result<super::RegistryRows> {
        load_registry(&**self.client().await?).await
    }

    pub async fn apply_registry(&self, changes: Vec<super::RegistryChange>) -> Result<()> {
        let mut client = self.client().await?;
        apply_registry(&mut client, &changes).await
    }

    pub async fn registry_version(&self) -> Result<i64> {
        registry::registry_version(&**self.client().await?).await
    }

    pub async fn put_code_blob(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        put_package(&**self.client().await?, sha256, bytes).await
    }

    pub async fn code_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        package(&**self.client().await?, sha256).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_keeps_the_server_and_options() {
        assert_eq!(
            database_url("postgres://u@h:5432/postgres", "scratch"),
            "postgres://u@h:5432/scratch"
        );
        assert_eq!(
            database_url("postgres://u@h/postgres?connect_timeout=3", "x"),
            "postgres://u@h/x?connect_timeout=3"
        );
    }
}
