//! The task model: FC's stateful async invocation states, the legal moves
//! between them, and history events. Plain data, no I/O.
//!
//! ```text
//!  Enqueued ──► Dequeued ──► Running ──► Succeeded | Failed | Stopped
//!     │            │           │  ▲
//!     │            │           │  └── Retrying ◄─┘ (Running → Retrying → Running)
//!     │            │           └──► Stopping ──► Stopped
//!     └──► Expired (too old when its turn came)
//!  any non-terminal ──► Invalid (its function was deleted)
//!  Enqueued / Dequeued / Retrying ──► Stopped (stopped before it ran)
//! ```

use std::fmt;

/// What a task's payload is, and so how it runs. Stored by name in the
/// task's `kind` column and shown as `wasmfc.kind` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// An event for an event function (async InvokeFunction).
    Event,
    /// A request recorded from an HTTP trigger, replayed into an HTTP
    /// component.
    Http,
    /// An orchestration's activity call; its outcome goes back to the
    /// orchestration, which applies its own retry policy.
    Activity,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Event => "event",
            TaskKind::Http => "http",
            TaskKind::Activity => "activity",
        }
    }

    /// The kind a stored name means; `None` for a name this build does not
    /// know.
    pub fn parse(s: &str) -> Option<TaskKind> {
        [TaskKind::Event, TaskKind::Http, TaskKind::Activity]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's state. The names are FC's, on the wire and in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    Enqueued,
    Dequeued,
    Running,
    Succeeded,
    Failed,
    Stopping,
    Stopped,
    Expired,
    Invalid,
    Retrying,
}

impl TaskState {
    pub const ALL: [TaskState; 10] = [
        TaskState::Enqueued,
        TaskState::Dequeued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Stopping,
        TaskState::Stopped,
        TaskState::Expired,
        TaskState::Invalid,
        TaskState::Retrying,
    ];

    /// States a task never leaves.
    pub const TERMINAL: [TaskState; 5] = [
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Stopped,
        TaskState::Expired,
        TaskState::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Enqueued => "Enqueued",
            TaskState::Dequeued => "Dequeued",
            TaskState::Running => "Running",
            TaskState::Succeeded => "Succeeded",
            TaskState::Failed => "Failed",
            TaskState::Stopping => "Stopping",
            TaskState::Stopped => "Stopped",
            TaskState::Expired => "Expired",
            TaskState::Invalid => "Invalid",
            TaskState::Retrying => "Retrying",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        TaskState::TERMINAL.contains(&self)
    }

    /// Whether `self → next` is a legal move.
    pub fn can_become(self, next: TaskState) -> bool {
        use TaskState::*;
        if self.is_terminal() {
            return false;
        }
        if next == Invalid {
            return true;
        }
        matches!(
            (self, next),
            (Enqueued, Dequeued)
                | (Enqueued, Expired)
                | (Enqueued, Stopped)
                | (Dequeued, Running)
                | (Dequeued, Stopped)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, Stopped)
                | (Running, Stopping)
                | (Running, Retrying)
                | (Stopping, Stopped)
                | (Retrying, Running)
                | (Retrying, Stopped)
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a task's history. `event_type` is a state name for task
/// transitions; the history is kept general (any type, any detail) so the
/// orchestration API can record its own events in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    pub event_id: i64,
    pub event_type: String,
    pub timestamp_ms: i64,
    pub detail: String,
}

/// The invocation-id rule: a letter or `_` first, then letters, digits,
/// `_` and `-`; at most 128 characters.
pub fn valid_invocation_id(id: &str) -> bool {
    let mut chars = id.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first && id.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A fresh invocation id (for callers that give none).
pub fn new_invocation_id() -> String {
    format!("task-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn only_legal_moves() {
        assert!(Enqueued.can_become(Dequeued));
        assert!(Running.can_become(Retrying) && Retrying.can_become(Running));
        assert!(Running.can_become(Stopping) && Stopping.can_become(Stopped));
        assert!(Dequeued.can_become(Invalid) && Retrying.can_become(Invalid));
        assert!(!Enqueued.can_become(Running), "must pass through Dequeued");
        assert!(!Stopping.can_become(Succeeded));
        assert!(!Dequeued.can_become(Expired));
        for t in TaskState::TERMINAL {
            for n in TaskState::ALL {
                assert!(!t.can_become(n), "{t} is terminal");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for t in TaskState::ALL {
            assert_eq!(TaskState::parse(t.as_str()), Some(t));
        }
        assert_eq!(TaskState::parse("running"), None);
    }

    #[test]
    fn invocation_id_rules() {
        assert!(valid_invocation_id("job-1") && valid_invocation_id("_x") && valid_invocation_id(&"a".repeat(128)));
        for bad in ["", "1job", "-job", "a/b", "a b", "a.b", &"a".repeat(129)] {
            assert!(!valid_invocation_id(bad), "{bad:?}");
        }
        assert!(valid_invocation_id(&new_invocation_id()));
    }
}

/// The invocation-id rule against a model of it.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::valid_invocation_id;

    proptest! {
        #[test]
        fn ids_of_fcs_form_are_valid(id in "[A-Za-z_][A-Za-z0-9_-]{0,127}") {
            prop_assert!(valid_invocation_id(&id));
        }

        #[test]
        fn any_other_string_is_refused(id in "\\PC{0,140}") {
            let model = id.len() <= 128
                && id.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(valid_invocation_id(&id), model);
        }
    }
}
