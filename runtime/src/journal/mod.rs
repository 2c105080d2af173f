//! The orchestration journal's vocabulary and its rules, as plain data:
//! history events, instance statuses, the operations on an instance and
//! when each is legal, which delivered outcome a step still accepts, and
//! how a rewind rewrites a history ([`rewind`]).
//!
//! It sits below the store and the orchestration engine, so both share one
//! definition: the engine ([`crate::durable`]) decides what to record, the
//! store ([`crate::store`]) applies what these rules decide inside its
//! transactions, and neither imports the other. No I/O here.

use serde::{Deserialize, Serialize};

pub mod rewind;

/// One history event. Serialized with DTFX's PascalCase names (the shape
/// `showHistory` returns, reshaped in the API layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "EventType")]
pub enum HistoryEvent {
    ExecutionStarted {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Input")]
        input: Option<String>,
    },
    /// An activity call (one attempt; retries and rewinds add more).
    TaskScheduled {
        #[serde(rename = "EventId")]
        step: u32,
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Input")]
        input: String,
        /// The task (stateful async invocation) that runs this attempt.
        #[serde(rename = "TaskId")]
        task_id: String,
        #[serde(rename = "Attempt")]
        attempt: u32,
        #[serde(rename = "RetryPolicy", default, skip_serializing_if = "Option::is_none")]
        retry: Option<StoredRetry>,
    },
    TaskCompleted {
        #[serde(rename = "TaskScheduledId")]
        step: u32,
        #[serde(rename = "Result")]
        result: String,
    },
    TaskFailed {
        #[serde(rename = "TaskScheduledId")]
        step: u32,
        #[serde(rename = "Reason")]
        reason: String,
    },
    TimerCreated {
        #[serde(rename = "EventId")]
        step: u32,
        #[serde(rename = "FireAt")]
        fire_at_ms: i64,
        /// Set when the timer is a wait's timeout: the event it waits for.
        #[serde(rename = "WaitFor", default, skip_serializing_if = "Option::is_none")]
        wait_for: Option<String>,
    },
    TimerFired {
        #[serde(rename = "TimerId")]
        step: u32,
        #[serde(rename = "FireAt")]
        fire_at_ms: i64,
    },
    /// A wait without a timeout (recorded so a re-run can check it).
    EventWaitStarted {
        #[serde(rename = "EventId")]
        step: u32,
        #[serde(rename = "Name")]
        name: String,
    },
    EventRaised {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Input")]
        input: String,
    },
    /// A `now()` answer (wasmfc's own event).
    ClockRead {
        #[serde(rename = "EventId")]
        step: u32,
        #[serde(rename = "Value")]
        value_ms: u64,
    },
    ExecutionCompleted {
        #[serde(rename = "OrchestrationStatus")]
        status: String,
        #[serde(rename = "Result")]
        result: Option<String>,
    },
    ExecutionTerminated {
        #[serde(rename = "Input")]
        reason: String,
    },
    ExecutionSuspended {
        #[serde(rename = "Reason")]
        reason: String,
    },
    ExecutionResumed {
        #[serde(rename = "Reason")]
        reason: String,
    },
    ExecutionRewound {
        #[serde(rename = "Reason")]
        reason: String,
    },
    /// A rewound failure, kept inert.
    GenericEvent {
        #[serde(rename = "Data")]
        data: String,
    },
}

impl HistoryEvent {
    /// The step this event belongs to, for the events that have one.
    pub fn step(&self) -> Option<u32> {
        match self {
            HistoryEvent::TaskScheduled { step, .. }
            | HistoryEvent::TaskCompleted { step, .. }
            | HistoryEvent::TaskFailed { step, .. }
            | HistoryEvent::TimerCreated { step, .. }
            | HistoryEvent::TimerFired { step, .. }
            | HistoryEvent::EventWaitStarted { step, .. }
            | HistoryEvent::ClockRead { step, .. } => Some(*step),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            HistoryEvent::ExecutionStarted { .. } => "ExecutionStarted",
            HistoryEvent::TaskScheduled { .. } => "TaskScheduled",
            HistoryEvent::TaskCompleted { .. } => "TaskCompleted",
            HistoryEvent::TaskFailed { .. } => "TaskFailed",
            HistoryEvent::TimerCreated { .. } => "TimerCreated",
            HistoryEvent::TimerFired { .. } => "TimerFired",
            HistoryEvent::EventWaitStarted { .. } => "EventWaitStarted",
            HistoryEvent::EventRaised { .. } => "EventRaised",
            HistoryEvent::ClockRead { .. } => "ClockRead",
            HistoryEvent::ExecutionCompleted { .. } => "ExecutionCompleted",
            HistoryEvent::ExecutionTerminated { .. } => "ExecutionTerminated",
            HistoryEvent::ExecutionSuspended { .. } => "ExecutionSuspended",
            HistoryEvent::ExecutionResumed { .. } => "ExecutionResumed",
            HistoryEvent::ExecutionRewound { .. } => "ExecutionRewound",
            HistoryEvent::GenericEvent { .. } => "GenericEvent",
        }
    }
}

/// A retry policy as stored with its `TaskScheduled`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StoredRetry {
    pub max_attempts: u32,
    pub first_retry_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub max_retry_interval_ms: u64,
}

impl StoredRetry {
    /// The wait before attempt `next` (1-based: the first retry is 1), or
    /// `None` when no attempts are left.
    pub fn delay_before(&self, next: u32) -> Option<u64> {
        if next + 1 > self.max_attempts.max(1) {
            return None;
        }
        let factor = self
            .backoff_coefficient
            .max(1.0)
            .powi(next.saturating_sub(1).min(60) as i32);
        let delay = (self.first_retry_interval_ms as f64 * factor).min(self.max_retry_interval_ms.max(1) as f64);
        Some(delay as u64)
    }
}

/// A history row: its position and time.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub seq: i64,
    pub ts_ms: i64,
    pub event: HistoryEvent,
}

/// An instance's `runtimeStatus` (exact casing on the wire and in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeStatus {
    Running,
    Completed,
    ContinuedAsNew,
    Failed,
    Canceled,
    Terminated,
    Pending,
    Suspended,
}

impl RuntimeStatus {
    pub const ALL: [RuntimeStatus; 8] = [
        RuntimeStatus::Running,
        RuntimeStatus::Completed,
        RuntimeStatus::ContinuedAsNew,
        RuntimeStatus::Failed,
        RuntimeStatus::Canceled,
        RuntimeStatus::Terminated,
        RuntimeStatus::Pending,
        RuntimeStatus::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Running => "Running",
            RuntimeStatus::Completed => "Completed",
            RuntimeStatus::ContinuedAsNew => "ContinuedAsNew",
            RuntimeStatus::Failed => "Failed",
            RuntimeStatus::Canceled => "Canceled",
            RuntimeStatus::Terminated => "Terminated",
            RuntimeStatus::Pending => "Pending",
            RuntimeStatus::Suspended => "Suspended",
        }
    }

    /// Exact enum names, case-insensitively (the API's parsing rule).
    pub fn parse(s: &str) -> Option<RuntimeStatus> {
        RuntimeStatus::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Completed, Failed, Terminated, Canceled: an instance never leaves these
    /// (short of a rewind, restart or a new start with its id).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated | RuntimeStatus::Canceled
        )
    }
}

/// Instance operations from the API.
#[derive(Debug, Clone)]
pub enum Control {
    Terminate(String),
    Suspend(String),
    Resume(String),
    Rewind(String),
}

/// Why an operation cannot apply to an instance in its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The instance has finished (410).
    Gone(RuntimeStatus),
    /// The operation is not legal in this status (500 per the spec).
    WrongState(RuntimeStatus),
}

impl Control {
    /// Whether this operation applies to an instance in `status`: only a
    /// rewind touches a finished instance (a failed one); suspend needs a
    /// live, unsuspended instance, resume a suspended one.
    pub fn check(&self, status: RuntimeStatus) -> Result<(), Refusal> {
        use RuntimeStatus::*;
        let rewinding = matches!(self, Control::Rewind(_));
        if status.is_terminal() && !(rewinding && status == Failed) {
            return Err(Refusal::Gone(status));
        }
        let legal = match self {
            Control::Terminate(_) => true,
            Control::Suspend(_) => matches!(status, Running | Pending | ContinuedAsNew),
            Control::Resume(_) => status == Suspended,
            Control::Rewind(_) => status == Failed,
        };
        if legal {
            Ok(())
        } else {
            Err(Refusal::WrongState(status))
        }
    }
}

/// Whether an activity outcome for a step is still awaited: the step's
/// last event is its `TaskScheduled`, for the same task when the outcome
/// names one. Anything else (already answered, a stale attempt, no such
/// step) means the outcome is a duplicate and is dropped.
pub fn awaits_outcome(last_of_step: Option<&HistoryEvent>, task_id: Option<&str>) -> bool {
    match last_of_step {
        Some(HistoryEvent::TaskScheduled { task_id: scheduled, .. }) => task_id.is_none_or(|t| t == scheduled),
        _ => false,
    }
}

/// Text as JSON text: valid JSON stays as it is, anything else becomes a
/// JSON string (activity results, failure messages, outputs).
pub fn as_json_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => text.to_string(),
        Ok(text) => serde_json::Value::String(text.to_string()).to_string(),
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_legal_only_in_their_statuses() {
        use RuntimeStatus::*;
        let suspend = Control::Suspend(String::new());
        assert_eq!(suspend.check(Running), Ok(()));
        assert_eq!(suspend.check(Suspended), Err(Refusal::WrongState(Suspended)));
        assert_eq!(suspend.check(Completed), Err(Refusal::Gone(Completed)));
        let resume = Control::Resume(String::new());
        assert_eq!(resume.check(Suspended), Ok(()));
        assert_eq!(resume.check(Running), Err(Refusal::WrongState(Running)));
        let rewind = Control::Rewind(String::new());
        assert_eq!(rewind.check(Failed), Ok(()));
        assert_eq!(rewind.check(Running), Err(Refusal::WrongState(Running)));
        assert_eq!(rewind.check(Terminated), Err(Refusal::Gone(Terminated)));
        let terminate = Control::Terminate(String::new());
        assert_eq!(terminate.check(Pending), Ok(()));
        assert_eq!(terminate.check(Failed), Err(Refusal::Gone(Failed)));
    }

    #[test]
    fn only_the_scheduled_attempt_may_answer_a_step() {
        let scheduled = HistoryEvent::TaskScheduled {
            step: 1,
            name: "a".into(),
            input: "1".into(),
            task_id: "t-1".into(),
            attempt: 0,
            retry: None,
        };
        assert!(awaits_outcome(Some(&scheduled), Some("t-1")));
        assert!(awaits_outcome(Some(&scheduled), None));
        assert!(!awaits_outcome(Some(&scheduled), Some("t-0")));
        let answered = HistoryEvent::TaskCompleted {
            step: 1,
            result: "2".into(),
        };
        assert!(!awaits_outcome(Some(&answered), Some("t-1")));
        assert!(!awaits_outcome(None, None));
    }
}
