//! Keeping a node's registry in step with the others' (shared store).
//!
//! Every node holds the whole registry in memory. When another node
//! changes it, this one reloads every row and swaps its state in one
//! step, under the write lock, announcing what changed for the pool and
//! the scheduler (`FunctionChanged`, `FunctionDeleted`) as a local change
//! would. A reload is asked for by the other node's `NOTIFY`, and a cheap
//! version read every second catches one that was lost.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::events::RegistryEvent;
use super::{Registry, Result, build_state};
use crate::cluster::{Cluster, Signal};

/// How often a node checks the registry's version without being told.
const VERSION_POLL: Duration = Duration::from_secs(1);

impl Registry {
    /// Reloads every row from the store and announces what changed.
    pub async fn reload(&self) -> Result<()> {
        let _guard = self.inner.write_lock.lock().await;
        let rows = self.inner.store.load_registry().await?;
        // A copy: readers keep the current state until the swap.
        let previous = self.inner.state.read().clone();
        let state = build_state(&self.inner.store, &self.inner.code, rows, Some(&previous)).await?;
        let mut events = Vec::new();
        for (service, entry) in &previous.services {
            for (function, before) in &entry.functions {
                match state.services.get(service).and_then(|s| s.functions.get(function)) {
                    None => events.push(RegistryEvent::FunctionDeleted {
                        service: service.clone(),
                        function: function.clone(),
                    }),
                    Some(now) if now.revision != before.revision => events.push(RegistryEvent::FunctionChanged {
                        service: service.clone(),
                        function: function.clone(),
                        revision: now.revision,
                    }),
                    Some(_) => {}
                }
            }
        }
        *self.inner.state.write() = state;
        for event in events {
            self.announce(event);
        }
        self.announce(RegistryEvent::Reloaded);
        Ok(())
    }

    /// Reloads whenever another node of `cluster` changes the registry.
    pub fn follow(&self, cluster: &Cluster) {
        if !cluster.is_shared() {
            return;
        }
        let this = self.clone();
        let mut signals = cluster.subscribe();
        tokio::spawn(async move {
            let mut version = this.inner.store.registry_version().await.ok();
            let mut poll = tokio::time::interval(VERSION_POLL);
            loop {
                let reload = tokio::select! {
                    signal = signals.recv() => matches!(
                        signal,
                        Ok(Signal::RegistryChanged | Signal::Reconnected) | Err(RecvError::Lagged(_))
                    ),
                    _ = poll.tick() => {
                        let now = this.inner.store.registry_version().await.ok();
                        now.is_some() && now != version
                    }
                };
                if !reload {
                    continue;
                }
                version = this.inner.store.registry_version().await.ok();
                if let Err(e) = this.reload().await {
                    tracing::warn!(error = %e, "reloading the registry failed");
                }
            }
        });
    }
}
