//! How `serve` keeps the modules that hold state derived from the registry
//! in step with it.

use crate::pool::Pool;
use crate::registry::Registry;

/// Keeps the pool and the scheduler in step with the registry: the one
/// place that reacts to its announcements. A change of LATEST releases the
/// instances of LATEST's earlier code and settings only; a deleted function loses every instance and its
/// unfinished tasks become `Invalid`.
pub(super) fn follow_registry(registry: &Registry, pool: Pool, scheduler: crate::scheduler::Scheduler) {
    use crate::registry::events::RegistryEvent;
    use tokio::sync::broadcast::error::RecvError;
    let mut events = registry.subscribe();
    let registry = registry.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(RegistryEvent::FunctionChanged {
                    service,
                    function,
                    revision,
                }) => pool.release_stale_latest(&service, &function, revision),
                Ok(RegistryEvent::Reloaded) => set_reserved_concurrency(&registry, &pool),
                Ok(RegistryEvent::FunctionDeleted { service, function }) => {
                    pool.release_function(&service, &function);
                    match scheduler.invalidate_function(&service, &function).await {
                        Ok(0) => {}
                        Ok(invalidated) => tracing::info!(
                            %service, %function, invalidated,
                            "function deleted; its unfinished tasks are Invalid"
                        ),
                        Err(e) => {
                            tracing::error!(%service, %function, error = %e, "invalidating a deleted function's tasks")
                        }
                    }
                }
                // Instances of changed code are never served (the pool's
                // key holds the modification time), so a missed release only
                // leaves idle instances to the idle reaper; a missed
                // deletion's tasks become Invalid when they come up (their
                // function no longer resolves).
                Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "registry announcements missed"),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Sets every function's reserved-concurrency gate from the registry.
pub(super) fn set_reserved_concurrency(registry: &Registry, pool: &Pool) {
    for (service, function, _, doc) in
        registry.list_function_configs(crate::registry::ConfigTable::Concurrency, None, None, None)
    {
        let limit = doc.get("reservedConcurrency").and_then(serde_json::Value::as_u64);
        pool.set_reserved_concurrency(&service, &function, limit);
    }
}
