//! Async-invoke configuration (FC's PutFunctionAsyncInvokeConfig) as the
//! scheduler applies it, and the destination ARNs it understands.

use serde_json::{Map, Value, json};

use crate::registry::{Fields, RegistryError};

/// FC's default retry count for async invocations.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// What the scheduler does with one function's async invocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncPolicy {
    /// Task mode: invocations are visible through the task API.
    pub stateful: bool,
    pub max_retries: u32,
    /// Older tasks expire instead of running.
    pub max_event_age_s: Option<u64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

impl Default for AsyncPolicy {
    fn default() -> Self {
        AsyncPolicy {
            stateful: false,
            max_retries: DEFAULT_MAX_RETRIES,
            max_event_age_s: None,
            on_success: None,
            on_failure: None,
        }
    }
}

impl AsyncPolicy {
    /// Reads a stored config document.
    pub fn from_doc(doc: &Map<String, Value>) -> AsyncPolicy {
        let dest = |which: &str| {
            doc.get("destinationConfig")
                .and_then(|d| d.get(which))
                .and_then(|d| d.get("destination"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        AsyncPolicy {
            stateful: doc.get("statefulInvocation").and_then(Value::as_bool).unwrap_or(false),
            max_retries: doc
                .get("maxAsyncRetryAttempts")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_MAX_RETRIES, |n| n as u32),
            max_event_age_s: doc.get("maxAsyncEventAgeInSeconds").and_then(Value::as_u64),
            on_success: dest("onSuccess"),
            on_failure: dest("onFailure"),
        }
    }
}

/// Validates a PutFunctionAsyncInvokeConfig body and builds the stored
/// document (FC's response shape).
pub fn config_doc(
    body: &Fields,
    service: &str,
    function: &str,
    qualifier: &str,
    created: Option<&str>,
) -> Result<Map<String, Value>, RegistryError> {
    let max_retries = body
        .int("maxAsyncRetryAttempts", 0, 8)?
        .unwrap_or(DEFAULT_MAX_RETRIES as i64);
    let max_age = body.int("maxAsyncEventAgeInSeconds", 1, 2_592_000)?;
    let stateful = body.bool("statefulInvocation")?.unwrap_or(false);
    let mut destination = Map::new();
    if let Some(d) = body.object("destinationConfig")? {
        for which in ["onSuccess", "onFailure"] {
            let Some(v) = d.get(which).filter(|v| !v.is_null()) else {
                continue;
            };
            let arn = v.get("destination").and_then(Value::as_str).ok_or_else(|| {
                RegistryError::InvalidArgument(format!("destinationConfig.{which}.destination must be a string"))
            })?;
            if !arn.starts_with("acs:") {
                return Err(RegistryError::InvalidArgument(format!(
                    "destinationConfig.{which}.destination '{arn}' is not an ARN \
                     (use acs:fc:::services/{{service}}.{{qualifier}}/functions/{{function}})"
                )));
            }
            if arn.starts_with("acs:fc:") && parse_fc_destination(arn).is_none() {
                return Err(RegistryError::InvalidArgument(format!(
                    "destinationConfig.{which}.destination '{arn}' is not of the form \
                     acs:fc:<region>:<account>:services/<service>[.<qualifier>]/functions/<function>"
                )));
            }
            if let Some((dest_service, _, dest_function)) = parse_fc_destination(arn)
                && dest_service == service
                && dest_function == function
            {
                return Err(RegistryError::InvalidArgument(format!(
                    "destinationConfig.{which}.destination '{arn}' is this function itself; \
                     a destination must be another function"
                )));
            }
            destination.insert(which.into(), json!({ "destination": arn }));
        }
    }
    let now = crate::util::iso_now();
    let mut doc = Map::new();
    doc.insert("service".into(), json!(service));
    doc.insert("function".into(), json!(function));
    doc.insert("qualifier".into(), json!(qualifier));
    doc.insert("maxAsyncRetryAttempts".into(), json!(max_retries));
    if let Some(age) = max_age {
        doc.insert("maxAsyncEventAgeInSeconds".into(), json!(age));
    }
    doc.insert("destinationConfig".into(), Value::Object(destination));
    doc.insert("statefulInvocation".into(), json!(stateful));
    doc.insert("createdTime".into(), json!(created.map_or(now.clone(), str::to_string)));
    doc.insert("lastModifiedTime".into(), json!(now));
    Ok(doc)
}

/// A function destination: (service, qualifier, function).
pub fn parse_fc_destination(arn: &str) -> Option<(String, Option<String>, String)> {
    let rest = arn.strip_prefix("acs:fc:")?;
    // acs:fc:<region>:<account>:services/<svc>[.<q>]/functions/<fn>
    let resource = rest.splitn(3, ':').nth(2)?;
    let resource = resource.strip_prefix("services/")?;
    let (svc, func) = resource.split_once("/functions/")?;
    if svc.is_empty() || func.is_empty() || func.contains('/') {
        return None;
    }
    let (service, qualifier) = match svc.split_once('.') {
        Some((s, q)) => (s.to_string(), Some(q.to_string())),
        None => (svc.to_string(), None),
    };
    Some((service, qualifier, func.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_arns() {
        assert_eq!(
            parse_fc_destination("acs:fc:cn-hangzhou:123:services/s.prod/functions/f"),
            Some(("s".into(), Some("prod".into()), "f".into()))
        );
        assert_eq!(
            parse_fc_destination("acs:fc:::services/s/functions/f"),
            Some(("s".into(), None, "f".into()))
        );
        assert_eq!(parse_fc_destination("acs:fc:::x"), None);
        assert_eq!(parse_fc_destination("acs:mns:::/queues/q"), None);
    }

    #[test]
    fn config_validation() {
        let ok = Fields::parse(br#"{"maxAsyncRetryAttempts": 2, "statefulInvocation": true,
            "destinationConfig": {"onSuccess": {"destination": "acs:fc:::services/a/functions/b"}, "onFailure": null}}"#)
        .unwrap();
        let doc = config_doc(&ok, "s", "f", "LATEST", None).unwrap();
        let p = AsyncPolicy::from_doc(&doc);
        assert!(p.stateful);
        assert_eq!(p.max_retries, 2);
        assert_eq!(p.on_success.as_deref(), Some("acs:fc:::services/a/functions/b"));
        for bad in [
            r#"{"maxAsyncRetryAttempts": 9}"#,
            r#"{"maxAsyncEventAgeInSeconds": 0}"#,
            r#"{"statefulInvocation": "yes"}"#,
            r#"{"destinationConfig": {"onSuccess": {"destination": "nope"}}}"#,
            r#"{"destinationConfig": {"onFailure": {"destination": "acs:fc:::bad"}}}"#,
            r#"{"destinationConfig": {"onSuccess": {"destination": "acs:fc:::services/s/functions/f"}}}"#,
            r#"{"destinationConfig": {"onFailure": {"destination": "acs:fc:::services/s.prod/functions/f"}}}"#,
        ] {
            assert!(
                config_doc(&Fields::parse(bad.as_bytes()).unwrap(), "s", "f", "LATEST", None).is_err(),
                "{bad}"
            );
        }
    }
}
