//! The ProvisionConfig document: parsing and validation of what the SDKs
//! send, and the target it asks for at a given moment.
//!
//! Precedence, as FC documents it: the plain `target`, overridden by the
//! scheduled action that fired most recently (inside its start/end window),
//! then adjusted by an active target-tracking policy within its min/max.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// Largest target accepted (FC documents 1–100000).
pub const MAX_TARGET: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// When a scheduled action fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// `cron(sec min hour day month weekday)`, in the action's `timeZone`
    /// (UTC when it has none).
    Cron(Box<cron::Schedule>, Tz),
    /// `at(yyyy-mm-ddThh:mm:ssZ)`: once.
    At(DateTime<Utc>),
}

impl Schedule {
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, ConfigError> {
        let expr = expr.trim();
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|e| e.strip_suffix(')')) {
            let fields = inner.split_whitespace().count();
            if fields != 6 {
                return Err(bad(format!(
                    "scheduleExpression '{expr}': cron takes 6 fields (second minute hour day month weekday), got {fields}"
                )));
            }
            let schedule = cron::Schedule::from_str(inner).map_err(|e| {
                bad(format!(
                    "scheduleExpression '{expr}' is not a valid cron expression: {e}"
                ))
            })?;
            return Ok(Schedule::Cron(Box::new(schedule), tz));
        }
        if let Some(inner) = expr.strip_prefix("at(").and_then(|e| e.strip_suffix(')')) {
            let at = parse_time(inner, tz)
                .map_err(|_| bad(format!("scheduleExpression '{expr}': at() takes yyyy-mm-ddThh:mm:ssZ")))?;
            return Ok(Schedule::At(at));
        }
        Err(bad(format!(
            "scheduleExpression '{expr}' must be cron(sec min hour day month weekday) or at(yyyy-mm-ddThh:mm:ssZ)"
        )))
    }

    /// The latest moment at or before `now` when this schedule fired.
    pub fn last_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::At(at) => (*at <= now).then_some(*at),
            // The iterator starts after `now + 1s`, so stepping back once
            // yields the latest fire time <= now.
            Schedule::Cron(s, tz) => s
                .after(&(now.with_timezone(tz) + chrono::Duration::seconds(1)))
                .next_back()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// A time with its offset (`2024-01-01T08:00:00+08:00`, `...Z`), or a
/// local time without one (`2024-01-01T08:00:00`, as FC 3.0 sends them
/// beside a `timeZone`), read in `tz`.
fn parse_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, ()> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").map_err(|_| ())?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or(())
}

/// An action's or policy's `timeZone` (an IANA name); UTC when absent.
fn time_zone(obj: &Map<String, Value>, what: &str) -> Result<Tz, ConfigError> {
    match obj.get("timeZone") {
        None | Some(Value::Null) => Ok(Tz::UTC),
        Some(Value::String(s)) if s.is_empty() => Ok(Tz::UTC),
        Some(Value::String(s)) => Tz::from_str(s).map_err(|_| {
            bad(format!(
                "{what}.timeZone '{s}' is not an IANA time zone (e.g. Asia/Shanghai)"
            ))
        }),
        Some(other) => Err(bad(format!("{what}.timeZone must be a string, got {other}"))),
    }
}

/// A start/end window; either end may be open.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Window {
    fn parse(obj: &Map<String, Value>, what: &str, tz: Tz) -> Result<Window, ConfigError> {
        let time = |key: &str| -> Result<Option<DateTime<Utc>>, ConfigError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => parse_time(s, tz)
                    .map(Some)
                    .map_err(|_| bad(format!("{what}.{key} '{s}' is not a time like 2024-01-01T00:00:00Z"))),
                Some(other) => Err(bad(format!("{what}.{key} must be a string, got {other}"))),
            }
        };
        let w = Window {
            start: time("startTime")?,
            end: time("endTime")?,
        };
        if let (Some(s), Some(e)) = (w.start, w.end)
            && s > e
        {
            return Err(bad(format!("{what}: startTime is after endTime")));
        }
        Ok(w)
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }
}

#[derive(Debug, Clone)]
pub struct ScheduledAction {
    pub name: String,
    pub window: Window,
    pub target: u64,
    pub schedule: Schedule,
}

#[derive(Debug, Clone)]
pub struct TrackingPolicy {
    pub name: String,
    pub window: Window,
    pub metric_target: f64,
    pub min: u64,
    pub max: u64,
}

/// A validated provision config.
#[derive(Debug, Clone)]
pub struct ProvisionConfig {
    pub target: u64,
    pub always_allocate_cpu: bool,
    pub scheduled: Vec<ScheduledAction>,
    pub tracking: Vec<TrackingPolicy>,
}

fn uint(obj: &Map<String, Value>, key: &str, what: &str, required: bool) -> Result<Option<u64>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(bad(format!("{what}.{key} is required"))),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_TARGET => Ok(Some(n)),
            _ => Err(bad(format!(
                "{what}.{key} must be an integer from 0 to {MAX_TARGET}, got {v}"
            ))),
        },
    }
}

fn name(obj: &Map<String, Value>, what: &str) -> Result<String, ConfigError> {
    match obj.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n.len() <= 128 => Ok(n.to_string()),
        _ => Err(bad(format!("{what}.name is required (1-128 characters)"))),
    }
}

fn array<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], ConfigError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(bad(format!("{key} must be a list, got {other}"))),
    }
}

impl ProvisionConfig {
    /// Parses a PutProvisionConfig body (both SDKs' shapes).
    pub fn parse(body: &Map<String, Value>) -> Result<ProvisionConfig, ConfigError> {
        // FC 3.0 calls the plain target `defaultTarget`.
        let target = match uint(body, "defaultTarget", "body", false)? {
            Some(t) => t,
            None => uint(body, "target", "body", true)?.unwrap_or(0),
        };
        let always_allocate_cpu = match body.get("alwaysAllocateCPU") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(bad(format!("alwaysAllocateCPU must be a boolean, got {other}"))),
        };
        let mut scheduled = Vec::new();
        for (i, item) in array(body, "scheduledActions")?.iter().enumerate() {
            let what = format!("scheduledActions[{i}]");
            let obj = item
                .as_object()
                .ok_or_else(|| bad(format!("{what} must be an object")))?;
            let expr = obj
                .get("scheduleExpression")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{what}.scheduleExpression is required")))?;
            let tz = time_zone(obj, &what)?;
            scheduled.push(ScheduledAction {
                name: name(obj, &what)?,
                window: Window::parse(obj, &what, tz)?,
                target: uint(obj, "target", &what, true)?.unwrap_or(0),
                schedule: Schedule::parse(expr, tz)?,
            });
        }
        let mut tracking = Vec::new();
        for (i, item) in array(body, "targetTrackingPolicies")?.iter().enumerate() {
            let what = format!("targetTrackingPolicies[{i}]");
            let obj = item
                .as_object()
                .ok_or_else(|| bad(format!("{what} must be an object")))?;
            match obj.get("metricType").and_then(Value::as_str) {
                Some("ProvisionedConcurrencyUtilization") => {}
                other => {
                    return Err(bad(format!(
                        "{what}.metricType must be ProvisionedConcurrencyUtilization, got {}",
                        other.unwrap_or("nothing")
                    )));
                }
            }
            let metric_target = obj.get("metricTarget").and_then(Value::as_f64).unwrap_or(f64::NAN);
            if !(metric_target > 0.0 && metric_target <= 1.0) {
                return Err(bad(format!(
                    "{what}.metricTarget must be in (0, 1], got {}",
                    obj.get("metricTarget").cloned().unwrap_or(Value::Null)
                )));
            }
            let min = uint(obj, "minCapacity", &what, true)?.unwrap_or(0);
            let max = uint(obj, "maxCapacity", &what, true)?.unwrap_or(0);
            if min > max {
                return Err(bad(format!(
                    "{what}: minCapacity {min} is greater than maxCapacity {max}"
                )));
            }
            tracking.push(TrackingPolicy {
                name: name(obj, &what)?,
                window: Window::parse(obj, &what, time_zone(obj, &what)?)?,
                metric_target,
                min,
                max,
            });
        }
        Ok(ProvisionConfig {
            target,
            always_allocate_cpu,
            scheduled,
            tracking,
        })
    }

    /// The target before target tracking: the plain target, or the
    /// scheduled action that fired most recently within its window.
    pub fn scheduled_target(&self, now: DateTime<Utc>) -> u64 {
        self.scheduled
            .iter()
            .filter(|a| a.window.contains(now))
            .filter_map(|a| {
                let fired = a.schedule.last_fire(now)?;
                // A fire before the window opened does not count.
                a.window.start.is_none_or(|s| fired >= s).then_some((fired, a.target))
            })
            .max_by_key(|(fired, _)| *fired)
            .map_or(self.target, |(_, target)| target)
    }

    /// The target-tracking policy in force now, if any.
    pub fn active_policy(&self, now: DateTime<Utc>) -> Option<&TrackingPolicy> {
        self.tracking.iter().find(|p| p.window.contains(now))
    }
}

/// One evaluation of a target-tracking policy: from `current` instances at
/// `utilization` (busy ÷ provisioned, averaged over the period) to the next
/// count. Scales out in proportion to the overshoot (at least one more);
/// scales in by at most a quarter per period, and only when clearly below
/// the target, so a steady load does not flap.
pub fn track(policy: &TrackingPolicy, current: u64, utilization: f64) -> u64 {
    let current_f = current.max(1) as f64;
    let wanted = if utilization > policy.metric_target {
        let proportional = (current_f * utilization / policy.metric_target).ceil() as u64;
        proportional.max(current + 1)
    } else if utilization < policy.metric_target * 0.8 {
        let proportional = (current_f * utilization / policy.metric_target).ceil() as u64;
        let step = (current / 4).max(1);
        proportional.max(current.saturating_sub(step))
    } else {
        current
    };
    wanted.clamp(policy.min, policy.max)
}

/// The document GetProvisionConfig answers with.
pub fn response_doc(
    account: &str,
    service: &str,
    qualifier: &str,
    function: &str,
    stored: &Map<String, Value>,
    current: u64,
    current_error: &str,
) -> Map<String, Value> {
    let doc = json!({
        "resource": format!("{account}#{service}#{qualifier}#{function}"),
        "target": stored.get("target").cloned().unwrap_or(json!(0)),
        "current": current,
        "currentError": current_error,
        "scheduledActions": stored.get("scheduledActions").cloned().unwrap_or(json!([])),
        "targetTrackingPolicies": stored.get("targetTrackingPolicies").cloned().unwrap_or(json!([])),
        "alwaysAllocateCPU": stored.get("alwaysAllocateCPU").cloned().unwrap_or(json!(true)),
    });
    match doc {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s, Tz::UTC).unwrap()
    }

    #[test]
    fn parses_and_rejects_schedules() {
        assert!(matches!(
            Schedule::parse("cron(0 0 8 * * *)", Tz::UTC),
            Ok(Schedule::Cron(..))
        ));
        assert!(matches!(
            Schedule::parse("at(2030-01-01T00:00:00Z)", Tz::UTC),
            Ok(Schedule::At(_))
        ));
        for bad in ["cron(0 8 * * *)", "cron(x y z * * *)", "at(tomorrow)", "every day", ""] {
            assert!(Schedule::parse(bad, Tz::UTC).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_last_fire_is_at_or_before_now() {
        let s = Schedule::parse("cron(0 0 8 * * *)", Tz::UTC).unwrap();
        let shanghai = Schedule::parse("cron(0 0 8 * * *)", Tz::Asia__Shanghai).unwrap();
        // 08:00 in Shanghai is 00:00 UTC.
        assert_eq!(
            shanghai.last_fire(t("2024-05-01T01:00:00Z")),
            Some(t("2024-05-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2024-05-01T08:00:00", Tz::Asia__Shanghai),
            Ok(t("2024-05-01T00:00:00Z"))
        );
        assert_eq!(s.last_fire(t("2030-01-02T09:00:00Z")), Some(t("2030-01-02T08:00:00Z")));
        assert_eq!(s.last_fire(t("2030-01-02T08:00:00Z")), Some(t("2030-01-02T08:00:00Z")));
        assert_eq!(s.last_fire(t("2030-01-02T07:59:59Z")), Some(t("2030-01-01T08:00:00Z")));
    }

    #[test]
    fn the_latest_scheduled_action_wins() {
        let body = json!({
            "target": 2,
            "scheduledActions": [
                {"name": "morning", "target": 10, "scheduleExpression": "cron(0 0 8 * * *)"},
                {"name": "evening", "target": 1, "scheduleExpression": "cron(0 0 20 * * *)"},
                {"name": "launch", "target": 50, "scheduleExpression": "at(2030-06-01T12:00:00Z)",
                 "endTime": "2030-06-01T13:00:00Z"},
            ]
        });
        let c = ProvisionConfig::parse(body.as_object().unwrap()).unwrap();
        assert_eq!(c.scheduled_target(t("2030-05-01T09:00:00Z")), 10);
        assert_eq!(c.scheduled_target(t("2030-05-01T21:00:00Z")), 1);
        assert_eq!(c.scheduled_target(t("2030-06-01T12:30:00Z")), 50);
        assert_eq!(c.scheduled_target(t("2030-06-01T13:30:00Z")), 10);
        let plain = ProvisionConfig::parse(json!({"target": 3}).as_object().unwrap()).unwrap();
        assert_eq!(plain.scheduled_target(Utc::now()), 3);
    }

    #[test]
    fn rejects_bad_policies() {
        for body in [
            json!({"target": -1}),
            json!({"target": 200000}),
            json!({"target": 1, "scheduledActions": [{"name": "a", "target": 1, "scheduleExpression": "cron(bad)"}]}),
            json!({"target": 1, "scheduledActions": [{"target": 1, "scheduleExpression": "at(2030-01-01T00:00:00Z)"}]}),
            json!({"target": 1, "targetTrackingPolicies": [{"name": "t", "metricType": "ProvisionedConcurrencyUtilization",
                   "metricTarget": 1.5, "minCapacity": 1, "maxCapacity": 2}]}),
            json!({"target": 1, "targetTrackingPolicies": [{"name": "t", "metricType": "ProvisionedConcurrencyUtilization",
                   "metricTarget": 0, "minCapacity": 1, "maxCapacity": 2}]}),
            json!({"target": 1, "targetTrackingPolicies": [{"name": "t", "metricType": "ProvisionedConcurrencyUtilization",
                   "metricTarget": 0.5, "minCapacity": 3, "maxCapacity": 2}]}),
            json!({"target": 1, "targetTrackingPolicies": [{"name": "t", "metricType": "CPU",
                   "metricTarget": 0.5, "minCapacity": 1, "maxCapacity": 2}]}),
        ] {
            assert!(ProvisionConfig::parse(body.as_object().unwrap()).is_err(), "{body}");
        }
    }

    #[test]
    fn tracking_scales_out_fast_and_in_slowly_within_bounds() {
        let p = TrackingPolicy {
            name: "t".into(),
            window: Window::default(),
            metric_target: 0.5,
            min: 1,
            max: 8,
        };
        assert_eq!(track(&p, 2, 1.0), 4);
        assert_eq!(track(&p, 4, 1.0), 8);
        assert_eq!(track(&p, 8, 1.0), 8);
        assert_eq!(track(&p, 8, 0.0), 6);
        assert_eq!(track(&p, 2, 0.0), 1);
        assert_eq!(track(&p, 1, 0.0), 1);
        assert_eq!(track(&p, 4, 0.45), 4);
    }
}

/// The schedule parser over arbitrary and generated expressions.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{Schedule, Tz};

    proptest! {
        /// Any text is answered, never a panic.
        #[test]
        fn arbitrary_expressions_are_answered(expr in "(cron\\(|at\\()?[ -~]{0,60}\\)?") {
            let _ = Schedule::parse(&expr, Tz::UTC);
        }

        /// A cron expression of plain fields parses, and its last firing is
        /// never in the future.
        #[test]
        fn plain_cron_fields_parse_and_fire_in_the_past(
            sec in 0u32..60, min in 0u32..60, hour in 0u32..24, day in 1u32..29, month in 1u32..13,
        ) {
            let expr = format!("cron({sec} {min} {hour} {day} {month} *)");
            let schedule = Schedule::parse(&expr, Tz::UTC);
            prop_assert!(schedule.is_ok(), "{expr}");
            let now = chrono::Utc::now();
            if let Some(at) = schedule.unwrap().last_fire(now) {
                prop_assert!(at <= now);
            }
        }

        #[test]
        fn at_expressions_round_trip(secs in 0i64..4_000_000_000) {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let expr = format!("at({})", t.format("%Y-%m-%dT%H:%M:%SZ"));
            match Schedule::parse(&expr, Tz::UTC) {
                Ok(Schedule::At(at)) => prop_assert_eq!(at, t),
                other => prop_assert!(false, "{expr}: {other:?}"),
            }
        }
    }
}
