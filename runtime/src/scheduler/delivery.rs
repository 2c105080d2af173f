//! Delivering a finished task's destination record (onSuccess/onFailure)
//! as an async invocation of the destination function.

use bytes::Bytes;
use serde_json::json;

use super::queue::QueuedTask;
use super::{AsyncPolicy, Scheduler, destination, policy};
use crate::engine::InvokeError;
use crate::store::{FollowUp, NewTask};
use crate::tasks::new_invocation_id;
use crate::tasks::{TaskKind, TaskState};

impl Scheduler {
    /// Builds the destination delivery for an outcome, if one is configured.
    pub(super) fn destination(
        &self,
        t: &QueuedTask,
        policy: &AsyncPolicy,
        payload: &Bytes,
        state: TaskState,
        result: &Result<Bytes, InvokeError>,
        attempts: u32,
    ) -> Option<FollowUp> {
        let arn = match state {
            TaskState::Succeeded => policy.on_success.clone()?,
            _ => policy.on_failure.clone()?,
        };
        let Some((service, qualifier, function)) = policy::parse_fc_destination(&arn) else {
            return Some(FollowUp {
                when: state,
                task: None,
                status: format!("Failed: wasmfc delivers only to function destinations (acs:fc:...), not {arn}"),
            });
        };
        let qualifier = qualifier.unwrap_or_else(|| "LATEST".into());
        if let Err(e) = self.inner.registry.resolve(&service, Some(&qualifier), &function) {
            return Some(FollowUp {
                when: state,
                task: None,
                status: format!("Failed: {e}"),
            });
        }
        let hops = destination::hops_after(payload);
        if hops > destination::MAX_HOPS {
            return Some(FollowUp {
                when: state,
                task: None,
                status: format!(
                    "Failed: not delivered to {arn}: this chain of destinations has passed through {} already \
                     (at most {})",
                    hops - 1,
                    destination::MAX_HOPS
                ),
            });
        }
        let (response, error_type) = match result {
            Ok(out) => (String::from_utf8_lossy(out).into_owned(), ""),
            Err(e) => (
                json!({ "errorMessage": e.to_string(), "errorType": e.error_type() }).to_string(),
                e.fc_error_type(),
            ),
        };
        let outcome = destination::Outcome {
            request_id: &t.request_id,
            invocation_id: &t.invocation_id,
            function_arn: format!(
                "acs:fc:::services/{}.{}/functions/{}",
                t.service, t.qualifier, t.function
            ),
            succeeded: state == TaskState::Succeeded,
            attempts,
            request_payload: payload,
            response_payload: response,
            error_type,
        };
        let record = destination::record(
            &outcome,
            hops,
            self.inner.config.destination_payload_limit,
            crate::util::now_ms(),
        );
        let dest_policy = self.policy(&service, &function, &qualifier);
        let id = new_invocation_id();
        Some(FollowUp {
            when: state,
            task: Some(NewTask {
                service,
                function,
                qualifier,
                invocation_id: id.clone(),
                stateful: dest_policy.stateful,
                kind: TaskKind::Event,
                payload: Bytes::from(record),
                request_id: crate::util::new_request_id(),
                created_ms: crate::util::now_ms(),
                due_ms: 0,
                detail: format!(
                    "destination of {}/{} invocation {}",
                    t.service, t.function, t.invocation_id
                ),
            }),
            status: format!("Succeeded: delivered to {arn} as {id}"),
        })
    }
}
