//! The shared queue: how a node of a cluster takes tasks from the store
//! they share, keeps them, and gives back the ones a dead node held.
//!
//! On the embedded store a submitted task goes straight into this node's
//! queue. On a shared store no node owns a task until it claims it: the
//! claim loop takes due tasks (`FOR UPDATE SKIP LOCKED`, as many as this
//! node has room for) whenever a submission here, a `NOTIFY` from another
//! node or the poll says some may be due, and puts them into the local
//! queue with their lease token (those it had free slots for already
//! `Dequeued` by the claim); from there they run exactly as on one node,
//! each transition fenced by the token. The lease loop renews what
//! this node holds, hears of Stops it missed, stops its own guests when it
//! cannot renew in time (their leases are about to be taken over), and puts
//! back the tasks whose leases lapsed anywhere — a `Running` one as a retry
//! under the function's policy, with a history event naming the node whose
//! lease expired.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::queue::QueuedTask;
use super::{AsyncPolicy, Scheduler};
use crate::cluster::Signal;
use crate::registry::ConfigTable;
use crate::store::postgres::{AgeLimits, ClaimRequest, Lapsed};
use crate::store::{PgStore, TaskUpdate, Transition};
use crate::tasks::TaskState;

/// How often a node looks for due tasks without being told of any.
const CLAIM_POLL: Duration = Duration::from_millis(250);
/// Most tasks one claim takes.
const CLAIM_BATCH: usize = 256;
/// Tasks a node holds at most, in multiples of its task concurrency: the
/// running ones and as many again queued here, so a task that finishes
/// finds the next one at hand instead of waiting for a claim's round trip.
const HELD_PER_SLOT: usize = 2;
/// Most lapsed leases put back per round.
const EXPIRE_BATCH: i64 = 512;

impl Scheduler {
    /// Queues a task that no node holds yet, due after `after`: here at
    /// once on the embedded store; on a shared store whichever node claims
    /// it first (this one is woken when it is due, the others are told).
    pub(super) fn queue_new(&self, t: QueuedTask, after: Duration) {
        if self.inner.store.shared().is_none() {
            if after.is_zero() {
                self.enqueue(t);
            } else {
                self.enqueue_after(t, after);
            }
            return;
        }
        if after.is_zero() {
            self.inner.claim_wake.notify_one();
            self.inner.cluster.tasks_due();
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            this.inner.claim_wake.notify_one();
        });
    }

    /// Starts the loops of a node on a shared store.
    pub(super) fn start_claiming(&self, store: PgStore) {
        let this = self.clone();
        let pg = store.clone();
        tokio::spawn(async move { this.claim_loop(pg).await });
        let this = self.clone();
        tokio::spawn(async move { this.lease_loop(store).await });
        let this = self.clone();
        tokio::spawn(async move { this.hear_signals().await });
    }

    async fn claim_loop(self, store: PgStore) {
        // Nodes start their scans at different partitions.
        let first = crate::store::postgres::queue_of(self.inner.cluster.node_id(), "");
        let lease_ms = self.inner.cluster.lease().as_millis() as i64;
        loop {
            let woken = self.inner.claim_wake.notified();
            loop {
                let most = HELD_PER_SLOT * self.inner.config.concurrency.max(1);
                let held = self.inner.held.len();
                let free = most.saturating_sub(held);
                // Claims come in batches: wait until a quarter of the room
                // is free, unless the queue here ran dry.
                if free == 0 || (free < most / 4 && held > self.inner.config.concurrency) {
                    break;
                }
                let ages = self.age_limits();
                // Slots free once the tasks already waiting here have theirs.
                let waiting = self.inner.queue.lock().len;
                let request = ClaimRequest {
                    node: self.inner.cluster.node_id(),
                    first_queue: first,
                    now_ms: crate::util::now_ms(),
                    lease_ms,
                    limit: free.min(CLAIM_BATCH),
                    slots: self.inner.global.available_permits().saturating_sub(waiting),
                    ages: &ages,
                };
                let claims = match store.claim_due(&request).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming tasks failed");
                        break;
                    }
                };
                if claims.is_empty() {
                    break;
                }
                for claim in claims {
                    self.inner.held.insert(claim.row.seq, claim.token);
                    let mut t = QueuedTask::from_row(&claim.row);
                    t.fence = Some(claim.token);
                    self.enqueue(t);
                }
            }
            // Room frees up as tasks finish: the dispatcher's wake-ups
            // come here too through `finish`.
            let _ = tokio::time::timeout(CLAIM_POLL, woken).await;
        }
    }

    /// The functions whose tasks expire after an age, as this node's
    /// registry knows them: a claim leaves their old tasks `Enqueued` for
    /// the runner to expire.
    fn age_limits(&self) -> AgeLimits {
        let mut ages = AgeLimits::default();
        let configs = self
            .inner
            .registry
            .list_function_configs(ConfigTable::AsyncInvoke, None, None, None);
        for (service, function, qualifier, doc) in configs {
            if let Some(age_s) = AsyncPolicy::from_doc(&doc).max_event_age_s {
                ages.push(&service, &function, &qualifier, age_s as i64 * 1000);
            }
        }
        ages
    }

    async fn hear_signals(self) {
        let mut signals = self.inner.cluster.subscribe();
        loop {
            match signals.recv().await {
                Ok(Signal::TasksDue) | Ok(Signal::Reconnected) | Err(RecvError::Lagged(_)) => {
                    self.inner.claim_wake.notify_one()
                }
                Ok(Signal::Stop(seq)) => self.signal(seq),
                Ok(Signal::RegistryChanged) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn lease_loop(self, store: PgStore) {
        let lease = self.inner.cluster.lease();
        let mut tick = tokio::time::interval(lease / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewed_ms = crate::util::now_ms();
        loop {
            tick.tick().await;
            match self.renew(&store).await {
                Ok(()) => renewed_ms = crate::util::now_ms(),
                Err(e) => tracing::warn!(error = %e, "renewing task leases failed"),
            }
            // Past three quarters of a lease without a renewal, the tasks
            // held here are about to be run elsewhere: stop their guests.
            if crate::util::now_ms() - renewed_ms > (lease.as_millis() as i64) * 3 / 4 {
                self.give_up_held("this node could not renew its task leases");
            }
            if let Err(e) = self.expire(&store).await {
                tracing::warn!(error = %e, "putting back lapsed task leases failed");
            }
        }
    }

    /// Renews every lease this node holds; a task missing from the answer
    /// was lost, one that is `Stopping` is stopped here.
    async fn renew(&self, store: &PgStore) -> crate::store::Result<()> {
        let held: Vec<(i64, i64)> = self.inner.held.iter().map(|e| (*e.key(), *e.value())).collect();
        if held.is_empty() {
            return Ok(());
        }
        let tokens: Vec<i64> = held.iter().map(|(_, token)| *token).collect();
        let until = crate::util::now_ms() + self.inner.cluster.lease().as_millis() as i64;
        let kept = store.renew_leases(self.inner.cluster.node_id(), &tokens, until).await?;
        let kept_seqs: std::collections::HashMap<i64, TaskState> = kept.into_iter().collect();
        for (seq, _) in held {
            match kept_seqs.get(&seq) {
                Some(TaskState::Stopping) => self.signal(seq),
                Some(_) => {}
                // Finished meanwhile, or taken over: only the latter is
                // still here.
                None => {
                    if self.inner.held.remove(&seq).is_some() {
                        self.lose(seq);
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops the guest of a task whose lease this node lost; its outcome
    /// will not be recorded.
    fn lose(&self, seq: i64) {
        // Only a running attempt has an outcome to drop; a task still
        // queued here fails its fenced transitions once taken over.
        if self.inner.running.contains_key(&seq) {
            self.inner.lost.insert(seq, ());
            self.signal(seq);
        }
    }

    fn give_up_held(&self, why: &str) {
        let seqs: Vec<i64> = self.inner.held.iter().map(|e| *e.key()).collect();
        if seqs.is_empty() {
            return;
        }
        tracing::warn!(tasks = seqs.len(), "{why}: stopping the guests of the tasks it holds");
        for seq in seqs {
            self.inner.held.remove(&seq);
            self.lose(seq);
        }
    }

    /// Puts back the tasks whose leases lapsed (any node's).
    async fn expire(&self, store: &PgStore) -> crate::store::Result<()> {
        let now = crate::util::now_ms();
        for lapsed in store.lapsed_leases(now, EXPIRE_BATCH).await? {
            self.put_back(store, lapsed, now).await?;
        }
        Ok(())
    }

    async fn put_back(&self, store: &PgStore, lapsed: Lapsed, now: i64) -> crate::store::Result<()> {
        use TaskState::*;
        let Lapsed { row, token, owner } = lapsed;
        let attempt = row.attempts + 1;
        let transition = match row.status {
            Enqueued | Dequeued | Retrying => {
                store.release_lapsed(row.seq, token, now).await?;
                self.inner.claim_wake.notify_one();
                return Ok(());
            }
            Running => {
                let policy = self.policy(&row.service, &row.function, &row.qualifier);
                let retry = row.kind != crate::tasks::TaskKind::Activity && row.attempts < policy.max_retries;
                let error = format!("the lease of node {owner} expired during attempt {attempt}");
                let (to, detail, update) = if retry {
                    let update = TaskUpdate {
                        attempts: Some(attempt),
                        next_run_ms: Some(now),
                        error: Some(error.clone()),
                        ..Default::default()
                    };
                    (
                        Retrying,
                        format!("{error}; retry {attempt} of {}", policy.max_retries),
                        update,
                    )
                } else {
                    let update = TaskUpdate {
                        error: Some(error.clone()),
                        ..Default::default()
                    };
                    (Failed, format!("{error}; no retries left"), update)
                };
                lapsed_transition(row.seq, token, now, Running, to, detail).with(update)
            }
            Stopping => lapsed_transition(
                row.seq,
                token,
                now,
                Stopping,
                Stopped,
                format!("the lease of node {owner} expired while the task was stopping"),
            ),
            _ => return Ok(()),
        };
        if let Some(applied) = self.inner.store.transition(transition).await? {
            if applied.state.is_terminal() {
                self.count_finished(applied.state);
                self.activity_finished(&applied.row);
            } else {
                self.inner.claim_wake.notify_one();
                self.inner.cluster.tasks_due();
            }
        }
        Ok(())
    }
}

/// `from` → `to` under the lapsed lease `token`, only while that lease is
/// still lapsed (its node did not renew it meanwhile).
fn lapsed_transition(seq: i64, token: i64, now: i64, from: TaskState, to: TaskState, detail: String) -> Transition {
    Transition::deciding(seq, detail, move |row| {
        (row.status == from && row.lease_until_ms < now).then_some(to)
    })
    .fenced(Some(token))
}

#[cfg(test)]
mod tests {
    use crate::store::postgres::QUEUES;

    #[test]
    fn queue_partitions_cover_every_start() {
        // claim_due scans QUEUES partitions from any start.
        let starts: std::collections::HashSet<i16> = (0..200)
            .map(|i| crate::store::postgres::queue_of(&format!("node-{i}"), ""))
            .collect();
        assert!(starts.iter().all(|q| (0..QUEUES).contains(q)));
        assert!(starts.len() > 1);
    }
}
