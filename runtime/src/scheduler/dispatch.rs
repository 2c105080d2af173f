//! The dispatcher: takes ready tasks off the in-memory queue as slots free
//! up and starts their runners.

use tokio::sync::OwnedSemaphorePermit;

use super::Scheduler;
use super::queue::QueuedTask;

impl Scheduler {
    pub(super) async fn dispatch_loop(self) {
        loop {
            let Ok(permit) = self.inner.global.clone().acquire_owned().await else {
                return;
            };
            let next = loop {
                let notified = self.inner.wake.notified();
                let ready = self.inner.queue.lock().pop_ready(self.inner.config.per_function);
                if let Some(t) = ready {
                    break t;
                }
                notified.await;
            };
            self.start_runner(next, permit);
        }
    }

    /// Starts the runner of `t`, which holds `permit` (its slot) until its
    /// attempt is over, under the policy read now; the runner takes the
    /// task from the queue if it is still there
    /// ([`start_attempt`](Scheduler::start_attempt)).
    fn start_runner(&self, mut t: QueuedTask, permit: OwnedSemaphorePermit) {
        let policy = self.task_policy(&t);
        let payload = t.payload.take();
        let this = self.clone();
        tokio::spawn(async move {
            this.run(t.clone(), payload, policy).await;
            this.finish(&t);
            drop(permit);
        });
    }

    pub(super) fn finish(&self, t: &QueuedTask) {
        self.inner.running.remove(&t.seq);
        self.inner.held.remove(&t.seq);
        self.inner.queue.lock().done(&t.key());
        self.inner.wake.notify_one();
        // Room for another claim (shared store).
        self.inner.claim_wake.notify_one();
    }
}
