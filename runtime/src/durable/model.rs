//! Orchestration instance vocabulary: runtime statuses and instance ids,
//! as the Durable Functions HTTP API defines them.

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

/// Checks an instance id per the Durable Functions rules: non-empty, at most
/// 256 characters, not starting with `@`, no `/ \ # ?` or control
/// characters.
pub fn check_instance_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("Instance ID must not be empty.".into());
    }
    if id.chars().count() > 256 {
        return Err(format!("Instance ID '{id}' exceeds 256 characters."));
    }
    if id.starts_with('@') {
        return Err(format!(
            "Orchestration instance ids must not start with @. Instance ID: '{id}'."
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
    {
        return Err(format!(
            "Orchestration instance ids must not contain /, \\, #, ? or control characters (found {c:?}). Instance ID: '{id}'."
        ));
    }
    Ok(())
}

/// A fresh instance id: a GUID as 32 lowercase hex digits (`Guid.ToString("N")`).
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_durable_rules() {
        assert!(check_instance_id("order-42").is_ok());
        assert!(check_instance_id(&"x".repeat(256)).is_ok());
        for bad in ["", "@e", "a/b", "a\\b", "a#b", "a?b", "a\nb"] {
            assert!(check_instance_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_instance_id(&"x".repeat(257)).is_err());
        assert_eq!(new_instance_id().len(), 32);
    }

    #[test]
    fn statuses_parse_case_insensitively() {
        assert_eq!(RuntimeStatus::parse("running"), Some(RuntimeStatus::Running));
        assert_eq!(RuntimeStatus::parse("Bogus"), None);
        assert!(RuntimeStatus::Terminated.is_terminal());
        assert!(!RuntimeStatus::Suspended.is_terminal());
    }
}
