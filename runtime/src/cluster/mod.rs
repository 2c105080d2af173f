//! The nodes that share one store: who they are, and the signals they send
//! each other.
//!
//! On the embedded store a server is a cluster of one: [`Cluster::single`]
//! knows only itself and sends nothing. On PostgreSQL ([`Cluster::join`])
//! every node is equal — there is no leader. Each one upserts a membership
//! row with a heartbeat every third of the lease period (a node whose
//! heartbeat is older than one lease period is gone), and listens on one
//! dedicated connection for the `NOTIFY`s the others send:
//!
//! - `wasmfc_tasks`: tasks became due (a submission, a retry) — claim now
//!   rather than at the next poll;
//! - `wasmfc_stop`: a task running here was asked to stop (its seq);
//! - `wasmfc_registry`: the registry changed — reload it.
//!
//! Signals are hints: every consumer also polls, so a notification lost
//! while the connection was down delays work by one poll, never loses it.
//! After the listening connection comes back, [`Signal::Reconnected`] tells
//! everyone to look again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::store::PgStore;
use crate::store::postgres::{NodeRow, REGISTRY_CHANNEL, STOP_CHANNEL, TASKS_CHANNEL};

/// The default lease period (`--lease-secs`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// What one node tells the others (or hears from them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Tasks became due somewhere.
    TasksDue,
    /// The task with this seq is to stop wherever it runs.
    Stop(i64),
    /// The registry changed.
    RegistryChanged,
    /// The listening connection was lost and is back: anything may have
    /// been missed.
    Reconnected,
}

/// How a node presents itself.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    /// Where clients reach it (`--public-url`).
    pub address: String,
    /// How long a lease lasts without renewal; heartbeats come every third.
    pub lease: Duration,
}

/// What a node reports in its heartbeat.
#[derive(Debug, Clone, Default)]
pub struct NodeReport {
    pub tasks_running: i64,
    pub instances: i64,
    /// Provisioned instances live here, by provision config
    /// (`service/function/qualifier`).
    pub provisioned: std::collections::BTreeMap<String, u64>,
}

/// Reads this node's [`NodeReport`] when a heartbeat is due.
pub type NodeCounts = Box<dyn Fn() -> NodeReport + Send + Sync>;

/// This node and the cluster it is part of. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    started_ms: i64,
    store: Option<PgStore>,
    live: RwLock<Vec<NodeRow>>,
    signals: broadcast::Sender<Signal>,
    counts: std::sync::OnceLock<NodeCounts>,
    /// A `wasmfc_tasks` notification is owed (sent at most every
    /// [`TASKS_NOTIFY_EVERY`], however many tasks are submitted).
    tasks_owed: AtomicBool,
    /// When the last heartbeat was written (ms), 0 before the first.
    last_heartbeat_ms: AtomicI64,
}

/// The least time between two `wasmfc_tasks` notifications of one node.
const TASKS_NOTIFY_EVERY: Duration = Duration::from_millis(20);

impl Cluster {
    /// A server on the embedded store: a cluster of one.
    pub fn single(config: NodeConfig) -> Cluster {
        Cluster::new(config, None)
    }

    /// Joins the nodes sharing `store`: the first heartbeat is written
    /// before this returns, then heartbeats and the listener run on their
    /// own tasks.
    pub async fn join(config: NodeConfig, store: PgStore) -> crate::store::Result<Cluster> {
        let cluster = Cluster::new(config, Some(store));
        cluster.beat().await?;
        tokio::spawn(cluster.clone().heartbeats());
        tokio::spawn(cluster.clone().listen());
        tokio::spawn(cluster.clone().send_owed_notifications());
        Ok(cluster)
    }

    fn new(config: NodeConfig, store: Option<PgStore>) -> Cluster {
        let started_ms = crate::util::now_ms();
        let me = NodeRow {
            node_id: config.node_id.clone(),
            address: config.address.clone(),
            started_ms,
            heartbeat_ms: started_ms,
            tasks_running: 0,
            instances: 0,
            provisioned: "{}".into(),
        };
        Cluster {
            inner: Arc::new(Inner {
                config,
                started_ms,
                store,
                live: RwLock::new(vec![me]),
                signals: broadcast::channel(1024).0,
                counts: std::sync::OnceLock::new(),
                tasks_owed: AtomicBool::new(false),
                last_heartbeat_ms: AtomicI64::new(0),
            }),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    pub fn lease(&self) -> Duration {
        self.inner.config.lease
    }

    /// True when other nodes may share the store.
    pub fn is_shared(&self) -> bool {
        self.inner.store.is_some()
    }

    /// Sets what heartbeats report.
    pub fn set_counts(&self, counts: NodeCounts) {
        let _ = self.inner.counts.set(counts);
    }

    /// The live nodes as of the last heartbeat, by id (this one included).
    pub fn live_nodes(&self) -> Vec<NodeRow> {
        self.inner.live.read().clone()
    }

    /// This node's place among the live ones and how many there are: the
    /// share of a cluster-wide target it should hold.
    pub fn position(&self) -> (usize, usize) {
        let live = self.inner.live.read();
        let at = live.iter().position(|n| n.node_id == self.node_id()).unwrap_or(0);
        (at, live.len().max(1))
    }

    /// This node's share of a cluster-wide count `total` (a provisioned
    /// target): spread evenly over the live nodes, the first ones taking
    /// one more when it does not divide.
    pub fn share(&self, total: u64) -> u64 {
        let (at, nodes) = self.position();
        share_of(total, at, nodes)
    }

    /// What the other live nodes hold of provision config `key`
    /// (`service/function/qualifier`), as of their last heartbeats.
    pub fn provisioned_elsewhere(&self, key: &str) -> u64 {
        let me = self.node_id();
        self.inner
            .live
            .read()
            .iter()
            .filter(|n| n.node_id != me)
            .filter_map(|n| serde_json::from_str::<serde_json::Value>(&n.provisioned).ok())
            .filter_map(|counts| counts.get(key).and_then(serde_json::Value::as_u64))
            .sum()
    }

    /// Hears what the nodes signal, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.inner.signals.subscribe()
    }

    /// Tells every node that tasks became due (coalesced).
    pub fn tasks_due(&self) {
        if self.is_shared() {
            self.inner.tasks_owed.store(true, Ordering::Release);
        }
    }

    /// Asks whichever node runs task `seq` to stop it.
    pub async fn stop_task(&self, seq: i64) {
        self.send(STOP_CHANNEL, &seq.to_string()).await;
    }

    async fn send(&self, channel: &str, payload: &str) {
        if let Some(store) = &self.inner.store
            && let Err(e) = store.notify(channel, payload).await
        {
            // Others still poll; the signal only makes them faster.
            tracing::warn!(channel, error = %e, "cannot notify the other nodes");
        }
    }

    /// Leaves the cluster (a clean shutdown): the others count this node
    /// gone at once instead of after a lease period.
    pub async fn leave(&self) {
        if let Some(store) = &self.inner.store
            && let Err(e) = store.leave(self.node_id()).await
        {
            tracing::warn!(error = %e, "cannot remove this node's membership row");
        }
    }

    /// When this node's last heartbeat was written (ms since the epoch).
    pub fn last_heartbeat_ms(&self) -> i64 {
        self.inner.last_heartbeat_ms.load(Ordering::Relaxed)
    }

    // ---- loops (shared store only) -----------------------------------------

    /// Writes this node's row and reads the live ones.
    async fn beat(&self) -> crate::store::Result<()> {
        let Some(store) = &self.inner.store else { return Ok(()) };
        let now = crate::util::now_ms();
        let report = self.inner.counts.get().map(|c| c()).unwrap_or_default();
        store
            .heartbeat(&NodeRow {
                node_id: self.node_id().to_string(),
                address: self.inner.config.address.clone(),
                started_ms: self.inner.started_ms,
                heartbeat_ms: now,
                tasks_running: report.tasks_running,
                instances: report.instances,
                provisioned: serde_json::to_string(&report.provisioned).unwrap_or_else(|_| "{}".into()),
            })
            .await?;
        self.inner.last_heartbeat_ms.store(now, Ordering::Relaxed);
        let since = now - self.lease().as_millis() as i64;
        let live = store.live_nodes(since).await?;
        *self.inner.live.write() = live;
        Ok(())
    }

    async fn heartbeats(self) {
        let mut tick = tokio::time::interval(self.lease() / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }

    async fn send_owed_notifications(self) {
        loop {
            tokio::time::sleep(TASKS_NOTIFY_EVERY).await;
            if self.inner.tasks_owed.swap(false, Ordering::AcqRel) {
                self.send(TASKS_CHANNEL, "").await;
            }
        }
    }

    /// Listens for the other nodes' signals, reconnecting when the
    /// connection is lost.
    async fn listen(self) {
        let Some(store) = self.inner.store.clone() else { return };
        let mut first = true;
        loop {
            match store.listen(&[TASKS_CHANNEL, STOP_CHANNEL, REGISTRY_CHANNEL]).await {
                Ok((_client, mut heard)) => {
                    if !first {
                        tracing::info!("listening to the other nodes again");
                        let _ = self.inner.signals.send(Signal::Reconnected);
                    }
                    while let Some((channel, payload)) = heard.recv().await {
                        if let Some(signal) = parse_signal(&channel, &payload) {
                            let _ = self.inner.signals.send(signal);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen to the other nodes; retrying"),
            }
            first = false;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The share of `total` that node `at` of `nodes` holds.
fn share_of(total: u64, at: usize, nodes: usize) -> u64 {
    let nodes = nodes.max(1) as u64;
    total / nodes + u64::from((at as u64) < total % nodes)
}

fn parse_signal(channel: &str, payload: &str) -> Option<Signal> {
    match channel {
        TASKS_CHANNEL => Some(Signal::TasksDue),
        STOP_CHANNEL => payload.parse().ok().map(Signal::Stop),
        REGISTRY_CHANNEL => Some(Signal::RegistryChanged),
        _ => None,
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id())
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_become_signals() {
        assert_eq!(parse_signal(TASKS_CHANNEL, ""), Some(Signal::TasksDue));
        assert_eq!(parse_signal(STOP_CHANNEL, "42"), Some(Signal::Stop(42)));
        assert_eq!(parse_signal(STOP_CHANNEL, "x"), None);
        assert_eq!(parse_signal(REGISTRY_CHANNEL, ""), Some(Signal::RegistryChanged));
        assert_eq!(parse_signal("other", ""), None);
    }

    #[test]
    fn shares_add_up_to_the_total() {
        for total in 0..20u64 {
            for nodes in 1..6usize {
                let sum: u64 = (0..nodes).map(|at| share_of(total, at, nodes)).sum();
                assert_eq!(sum, total, "{total} over {nodes}");
                let most = (0..nodes).map(|at| share_of(total, at, nodes)).max().unwrap();
                let least = (0..nodes).map(|at| share_of(total, at, nodes)).min().unwrap();
                assert!(most - least <= 1);
            }
        }
    }

    #[test]
    fn a_single_node_is_first_of_one() {
        let c = Cluster::single(NodeConfig {
            node_id: "n1".into(),
            address: "http://127.0.0.1:9000".into(),
            lease: DEFAULT_LEASE,
        });
        assert_eq!(c.position(), (0, 1));
        assert_eq!(c.share(7), 7);
        assert_eq!(c.provisioned_elsewhere("s/f/prod"), 0);
        assert!(!c.is_shared());
        assert_eq!(c.live_nodes()[0].node_id, "n1");
    }
}
