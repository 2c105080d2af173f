//! How a rewind rewrites a failed instance's history: its failures become
//! inert (`GenericEvent`s that say what they were), and each failed step
//! gets a new attempt of the activity it had scheduled. A pure function of
//! the history, so the store only applies the plan inside its transaction.

use super::{HistoryEvent, Recorded};

/// What a rewind changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RewindPlan {
    /// History rows to rewrite in place: (seq, the inert event).
    pub inert: Vec<(i64, HistoryEvent)>,
    /// Steps to schedule again, in history order.
    pub retries: Vec<StepRetry>,
}

/// A failed activity step's next attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRetry {
    pub step: u32,
    pub name: String,
    pub input: String,
    /// The attempt number of the new `TaskScheduled`.
    pub attempt: u32,
}

/// Plans the rewind of `history`.
pub fn plan(history: &[Recorded]) -> RewindPlan {
    let mut scheduled = std::collections::HashMap::new();
    let mut plan = RewindPlan::default();
    for rec in history {
        match &rec.event {
            HistoryEvent::TaskScheduled {
                step,
                name,
                input,
                attempt,
                ..
            } => {
                scheduled.insert(*step, (name, input, *attempt));
            }
            HistoryEvent::TaskFailed { step, reason } => {
                plan.inert.push((
                    rec.seq,
                    HistoryEvent::GenericEvent {
                        data: format!("Rewound: TaskFailed (step {step}): {reason}"),
                    },
                ));
                if let Some((name, input, attempt)) = scheduled.get(step) {
                    plan.retries.push(StepRetry {
                        step: *step,
                        name: (*name).clone(),
                        input: (*input).clone(),
                        attempt: attempt + 1,
                    });
                }
            }
            HistoryEvent::ExecutionCompleted { status, result } if status == "Failed" => {
                plan.inert.push((
                    rec.seq,
                    HistoryEvent::GenericEvent {
                        data: format!(
                            "Rewound: ExecutionCompleted (Failed): {}",
                            result.clone().unwrap_or_default()
                        ),
                    },
                ));
            }
            _ => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: i64, event: HistoryEvent) -> Recorded {
        Recorded { seq, ts_ms: 0, event }
    }

    fn scheduled(step: u32, attempt: u32) -> HistoryEvent {
        HistoryEvent::TaskScheduled {
            step,
            name: format!("act{step}"),
            input: "\"in\"".into(),
            task_id: format!("t{step}-{attempt}"),
            attempt,
            retry: None,
        }
    }

    #[test]
    fn failures_go_inert_and_failed_steps_get_the_next_attempt() {
        let history = [
            at(
                0,
                HistoryEvent::ExecutionStarted {
                    name: "o".into(),
                    input: None,
                },
            ),
            at(1, scheduled(0, 0)),
            at(
                2,
                HistoryEvent::TaskCompleted {
                    step: 0,
                    result: "1".into(),
                },
            ),
            at(3, scheduled(1, 2)),
            at(
                4,
                HistoryEvent::TaskFailed {
                    step: 1,
                    reason: "boom".into(),
                },
            ),
            at(
                5,
                HistoryEvent::ExecutionCompleted {
                    status: "Failed".into(),
                    result: Some("boom".into()),
                },
            ),
        ];
        let plan = plan(&history);
        assert_eq!(plan.inert.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(
            plan.inert[0].1,
            HistoryEvent::GenericEvent {
                data: "Rewound: TaskFailed (step 1): boom".into()
            }
        );
        assert_eq!(
            plan.retries,
            [StepRetry {
                step: 1,
                name: "act1".into(),
                input: "\"in\"".into(),
                attempt: 3,
            }]
        );
    }

    #[test]
    fn a_completed_history_has_nothing_to_rewind() {
        let history = [
            at(0, scheduled(0, 0)),
            at(
                1,
                HistoryEvent::TaskCompleted {
                    step: 0,
                    result: "1".into(),
                },
            ),
        ];
        assert_eq!(plan(&history), RewindPlan::default());
    }
}
