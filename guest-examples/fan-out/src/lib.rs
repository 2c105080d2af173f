//! `fan-out`: the Durable Functions "fan-out/fan-in" sample. Calls the
//! `square` activity for 1..=n at once and returns the sum of the results.
//!
//! Input: `n` or `{"n": n}` (default 10). With `"rounds": r` it is an eternal
//! orchestration in miniature: after each round it continues as new (fresh
//! history) carrying the running total, and returns it after round r.

use serde_json::Value;
use wasmfc_guest::orchestration::{Activity, Orchestration};

fn run(o: &Orchestration, input: String) -> Result<String, String> {
    let value = match serde_json::from_str::<Value>(&input) {
        Ok(Value::String(inner)) => serde_json::from_str(&inner).unwrap_or(Value::Null),
        Ok(v) => v,
        Err(_) => Value::Null,
    };
    let n = value
        .as_u64()
        .or_else(|| value.get("n").and_then(Value::as_u64))
        .unwrap_or(10);
    let rounds = value.get("rounds").and_then(Value::as_u64).unwrap_or(1);
    let carry = value.get("carry").and_then(Value::as_i64).unwrap_or(0);
    let calls: Vec<Activity> = (1..=n).map(|i| Activity::new("square", i.to_string())).collect();
    let mut sum: i64 = 0;
    for (i, result) in o.call_functions(&calls).into_iter().enumerate() {
        let out = result.map_err(|e| format!("square({}) failed: {e}", i + 1))?;
        sum += out
            .trim()
            .parse::<i64>()
            .map_err(|e| format!("square({}) returned {out}: {e}", i + 1))?;
    }
    let total = carry + sum;
    if rounds > 1 {
        let next = serde_json::json!({"n": n, "rounds": rounds - 1, "carry": total});
        o.continue_as_new(&next.to_string());
    }
    Ok(total.to_string())
}

wasmfc_guest::export_orchestrator!(run);
