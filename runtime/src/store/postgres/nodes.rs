//! Node membership: a row per node, kept alive by its heartbeat.
//!
//! A node is live while its last heartbeat is younger than the lease
//! period; the cluster's view (`GET /cluster`, provisioned concurrency
//! spread over live nodes) reads these rows. The heartbeat also carries
//! the node's counts, so one statement per period tells the others what it
//! is doing.

use tokio_postgres::GenericClient;

use super::super::Result;

/// One node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node_id: String,
    pub address: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub tasks_running: i64,
    pub instances: i64,
    /// Provisioned instances live on the node, by provision config
    /// (`service/function/qualifier`): a JSON object.
    pub provisioned: String,
}

/// Records a node's heartbeat (joining the cluster on its first one).
pub async fn heartbeat(client: &impl GenericClient, node: &NodeRow) -> Result<()> {
    client
        .execute(
            "INSERT INTO nodes (node_id, address, started_ms, heartbeat_ms, tasks_running, instances, provisioned)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (node_id) DO UPDATE SET
                 address = excluded.address,
                 heartbeat_ms = excluded.heartbeat_ms,
                 tasks_running = excluded.tasks_running,
                 instances = excluded.instances,
                 provisioned = excluded.provisioned",
            &[
                &node.node_id,
                &node.address,
                &node.started_ms,
                &node.heartbeat_ms,
                &node.tasks_running,
                &node.instances,
                &node.provisioned,
            ],
        )
        .await?;
    Ok(())
}

/// Every node whose heartbeat is at or after `since_ms`, by id.
pub async fn live_nodes(client: &impl GenericClient, since_ms: i64) -> Result<Vec<NodeRow>> {
    let rows = client
        .query(
            "SELECT node_id, address, started_ms, heartbeat_ms, tasks_running, instances, provisioned
             FROM nodes WHERE heartbeat_ms >= $1 ORDER BY node_id",
            &[&since_ms],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| NodeRow {
            node_id: r.get(0),
            address: r.get(1),
            started_ms: r.get(2),
            heartbeat_ms: r.get(3),
            tasks_running: r.get(4),
            instances: r.get(5),
            provisioned: r.get(6),
        })
        .collect())
}

/// Removes a node's row: a clean shutdown, so the others need not wait a
/// lease period to count it gone.
pub async fn leave(client: &impl GenericClient, node_id: &str) -> Result<()> {
    client
        .execute("DELETE FROM nodes WHERE node_id = $1", &[&node_id])
        .await?;
    Ok(())
}

impl super::PgStore {
    /// Records this node's heartbeat (see [`heartbeat`]).
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<()> {
        heartbeat(&**self.client().await?, node).await
    }

    /// The nodes whose heartbeat is at or after `since_ms`.
    pub async fn live_nodes(&self, since_ms: i64) -> Result<Vec<NodeRow>> {
        live_nodes(&**self.client().await?, since_ms).await
    }

    /// Removes this node's row (a clean shutdown).
    pub async fn leave(&self, node_id: &str) -> Result<()> {
        leave(&**self.client().await?, node_id).await
    }
}
