//! Orchestrations on a shared store: the instance lease around each run,
//! and the sweep that picks up what other nodes left.
//!
//! Before a run a node takes the instance's lease (see the store's
//! `orch_leases`); after it, it gives the lease back and learns whether
//! news arrived meanwhile, from any node, in which case it runs again. The
//! sweep renews the leases of runs under way here, wakes orphans (news
//! pending, no live lease: their node died or a wake-up was lost), and
//! arms the timers any node recorded, so a durable timer fires even when
//! the node that armed it is gone — once, since firing deletes its row.

use std::cmp::Reverse;
use std::time::Duration;

use super::Durable;
use crate::store::PgStore;

/// How often the sweep runs.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Timers armed this far ahead of their firing time.
const TIMER_LOOKAHEAD_MS: i64 = 2_000;
/// Most orphans or timers taken per sweep.
const SWEEP_BATCH: i64 = 500;

/// Another node holds the instance's lease.
pub(super) struct Busy;

impl Durable {
    /// The lease token for a run of `rid`: `Ok(None)` on the embedded
    /// store (one node), `Err(Busy)` when another node runs it now.
    pub(super) async fn take_lease(&self, rid: i64) -> Result<Option<i64>, Busy> {
        let Some(store) = self.inner.store.shared() else {
            return Ok(None);
        };
        let now = crate::util::now_ms();
        let lease_ms = self.inner.cluster.lease().as_millis() as i64;
        match store
            .orch_acquire(rid, self.inner.cluster.node_id(), now, lease_ms)
            .await
        {
            Ok(Some(token)) => {
                self.inner.held.insert(rid, token);
                Ok(Some(token))
            }
            Ok(None) => Err(Busy),
            Err(e) => {
                // The sweep retries once the store answers again.
                tracing::warn!(rid, error = %e, "cannot take an orchestration's lease");
                Err(Busy)
            }
        }
    }

    /// Gives a run's lease back; true when news arrived that no run has
    /// read yet.
    pub(super) async fn give_lease_back(&self, rid: i64, fence: Option<i64>) -> bool {
        let (Some(store), Some(token)) = (self.inner.store.shared(), fence) else {
            return false;
        };
        self.inner.held.remove(&rid);
        match store.orch_release(rid, token).await {
            Ok(pending) => pending,
            Err(e) => {
                // Unreleased, the lease lapses; the sweep finds the news.
                tracing::warn!(rid, error = %e, "cannot give an orchestration's lease back");
                false
            }
        }
    }

    pub(super) async fn sweep(self, store: PgStore) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.sweep_once(&store).await {
                tracing::warn!(error = %e, "the orchestration sweep failed");
            }
        }
    }

    async fn sweep_once(&self, store: &PgStore) -> crate::store::Result<()> {
        let now = crate::util::now_ms();
        let tokens: Vec<i64> = self.inner.held.iter().map(|e| *e.value()).collect();
        if !tokens.is_empty() {
            let until = now + self.inner.cluster.lease().as_millis() as i64;
            store.orch_renew(self.inner.cluster.node_id(), &tokens, until).await?;
        }
        for rid in store.orch_orphans(now, SWEEP_BATCH).await? {
            self.wake(rid);
        }
        let due = store.orch_due_timers(now + TIMER_LOOKAHEAD_MS, SWEEP_BATCH).await?;
        if !due.is_empty() {
            let mut heap = self.inner.timers.lock();
            for timer in due {
                if self.inner.armed.insert((timer.rid, timer.generation, timer.step)) {
                    heap.push(Reverse(timer));
                }
            }
            drop(heap);
            self.inner.timer_wake.notify_one();
        }
        Ok(())
    }
}
