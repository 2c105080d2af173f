//! Orchestration instance vocabulary: runtime statuses and instance ids,
//! as the Durable Functions HTTP API defines them.

pub use crate::journal::RuntimeStatus;

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
