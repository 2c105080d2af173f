//! Provisioned concurrency: FC's ProvisionConfig, and the autoscaler that
//! keeps the pool's provisioned instances at the configured target.
//!
//! The autoscaler runs a short reconcile loop (every 200 ms, and at once
//! when a config is written): for every stored config it computes the
//! effective target — plain target, overridden by the scheduled action that
//! fired last, adjusted by target tracking once per evaluation period — and
//! asks the pool to converge. Utilization for target tracking is sampled on
//! every reconcile and averaged over the period.

pub mod config;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::cluster::Cluster;
use crate::pool::{Pool, PoolKey};
use crate::registry::{ConfigTable, Registry};
use config::{ProvisionConfig, track};

/// Identifies one config: (service, function, qualifier).
pub type ConfigKey = (String, String, String);

/// What the autoscaler last did for one config (for GetProvisionConfig).
#[derive(Debug, Clone, Default)]
pub struct ProvisionStatus {
    /// The target in force: the config's, a scheduled action's, or what
    /// target tracking decided (cluster-wide: each node holds its share).
    pub target: u64,
    /// Live provisioned instances on this node.
    pub current: u64,
    pub error: String,
}

struct Tracking {
    /// The target tracking decided last.
    target: u64,
    last_eval: Instant,
    samples: Vec<f64>,
}

/// The autoscaler. Cheap to clone.
#[derive(Clone)]
pub struct Autoscaler {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    pool: Pool,
    eval_period: Duration,
    wake: Notify,
    status: DashMap<ConfigKey, ProvisionStatus>,
    /// The nodes the targets are spread over (one on SQLite).
    cluster: Cluster,
}

impl Autoscaler {
    /// Starts the reconcile loop. `eval_period` is target tracking's
    /// evaluation period (FC: one minute).
    pub fn start(registry: Registry, pool: Pool, cluster: Cluster, eval_period: Duration) -> Autoscaler {
        let this = Autoscaler {
            inner: Arc::new(Inner {
                registry,
                pool,
                cluster,
                eval_period,
                wake: Notify::new(),
                status: DashMap::new(),
            }),
        };
        let looping = this.clone();
        tokio::spawn(async move { looping.run().await });
        this
    }

    /// Reconcile now (a config was written or deleted).
    pub fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    pub fn status(&self, key: &ConfigKey) -> ProvisionStatus {
        self.inner.status.get(key).map(|s| s.clone()).unwrap_or_default()
    }

    /// Provisioned instances live on this node, by config
    /// (`service/function/qualifier`): what its heartbeat reports.
    pub fn provisioned_here(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner
            .status
            .iter()
            .map(|e| {
                let (s, f, q) = e.key();
                (format!("{s}/{f}/{q}"), e.value().current)
            })
            .collect()
    }

    /// Provisioned instances of config `key` live on the other nodes.
    pub fn provisioned_elsewhere(&self, key: &ConfigKey) -> u64 {
        let (s, f, q) = key;
        self.inner.cluster.provisioned_elsewhere(&format!("{s}/{f}/{q}"))
    }

    async fn run(self) {
        let mut tracking: HashMap<ConfigKey, Tracking> = HashMap::new();
        let mut provisioned: HashMap<ConfigKey, PoolKey> = HashMap::new();
        // Parsed configs by key, re-parsed (cron and all) only when the
        // stored document changes, not on every 200 ms round.
        let mut parsed: HashMap<ConfigKey, (Map<String, Value>, ProvisionConfig)> = HashMap::new();
        loop {
            let configs = self
                .inner
                .registry
                .list_function_configs(ConfigTable::Provision, None, None, None);
            let now = chrono::Utc::now();
            let mut seen: HashMap<ConfigKey, PoolKey> = HashMap::new();
            for (service, function, qualifier, doc) in configs {
                let key: ConfigKey = (service.clone(), function.clone(), qualifier.clone());
                let config = match parsed.get(&key) {
                    Some((seen_doc, config)) if *seen_doc == doc => config.clone(),
                    _ => match ProvisionConfig::parse(&doc) {
                        Ok(c) => {
                            parsed.insert(key.clone(), (doc, c.clone()));
                            c
                        }
                        Err(e) => {
                            self.set_status(&key, 0, 0, format!("stored config is invalid: {e}"));
                            continue;
                        }
                    },
                };
                // The alias's main version: weights route invocations, not
                // where provisioned instances live.
                let resolved = match self.inner.registry.resolve_main(&service, Some(&qualifier), &function) {
                    Ok(r) => r,
                    Err(e) => {
                        self.set_status(&key, 0, 0, e.to_string());
                        continue;
                    }
                };
                let pool_key = PoolKey::of(&resolved);
                let base = config.scheduled_target(now);
                let target = match config.active_policy(now) {
                    Some(policy) => {
                        let (live, busy) = self.inner.pool.provisioned(&resolved);
                        let state = tracking.entry(key.clone()).or_insert_with(|| Tracking {
                            target: base.clamp(policy.min, policy.max),
                            last_eval: Instant::now(),
                            samples: Vec::new(),
                        });
                        state
                            .samples
                            .push(if live == 0 { 0.0 } else { busy as f64 / live as f64 });
                        if state.last_eval.elapsed() >= self.inner.eval_period {
                            let average = state.samples.iter().sum::<f64>() / state.samples.len().max(1) as f64;
                            let next = track(policy, state.target, average);
                            if next != state.target {
                                tracing::info!(
                                    service,
                                    function,
                                    qualifier,
                                    utilization = average,
                                    from = state.target,
                                    to = next,
                                    "target tracking"
                                );
                            }
                            state.target = next;
                            state.samples.clear();
                            state.last_eval = Instant::now();
                        }
                        state.target.clamp(policy.min, policy.max)
                    }
                    None => {
                        tracking.remove(&key);
                        base
                    }
                };
                // Each live node holds its share of the target.
                let here = self.inner.cluster.share(target);
                let (current, error) = self.inner.pool.provision(&resolved, here).await;
                self.inner.pool.metrics().minutes.record_provision(
                    &format!("{service}/{function}/{qualifier}"),
                    target,
                    current,
                );
                self.set_status(&key, target, current, error.unwrap_or_default());
                if let Some(old) = provisioned.get(&key)
                    && *old != pool_key
                {
                    // The alias moved or the function changed: release the
                    // instances of what it pointed to before.
                    self.inner.pool.unprovision(old);
                }
                seen.insert(key, pool_key);
            }
            parsed.retain(|key, _| seen.contains_key(key));
            for (key, pool_key) in &provisioned {
                if !seen.contains_key(key) {
                    self.inner.pool.unprovision(pool_key);
                    self.inner.status.remove(key);
                    tracking.remove(key);
                }
            }
            provisioned = seen;
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    fn set_status(&self, key: &ConfigKey, target: u64, current: u64, error: String) {
        self.inner
            .status
            .insert(key.clone(), ProvisionStatus { target, current, error });
    }
}
