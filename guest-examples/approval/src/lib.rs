//! `approval`: the Durable Functions "human interaction" sample. Shows a
//! custom status, waits for an `Approval` event, and then calls the `hello`
//! activity for whoever approved; without the event it times out to its
//! fallback branch.
//!
//! Input (optional): `{"timeoutMs": 60000}` (default one hour), and
//! `"delayMs"`: first sleep that long on a durable timer (an event raised
//! meanwhile is buffered, and the wait takes it at once).

use std::time::Duration;

use serde_json::{Value, json};
use wasmfc_guest::orchestration::Orchestration;

fn input_value(input: &str) -> Value {
    match serde_json::from_str::<Value>(input) {
        Ok(Value::String(inner)) => serde_json::from_str(&inner).unwrap_or(Value::String(inner)),
        Ok(v) => v,
        Err(_) => Value::Null,
    }
}

fn run(o: &Orchestration, input: String) -> Result<String, String> {
    let input = input_value(&input);
    let timeout_ms = input.get("timeoutMs").and_then(Value::as_u64).unwrap_or(3_600_000);
    if let Some(delay) = input.get("delayMs").and_then(Value::as_u64) {
        o.set_custom_status(&json!({"stage": "preparing"}).to_string());
        o.sleep(Duration::from_millis(delay));
    }
    o.set_custom_status(&json!({"stage": "waiting for approval", "since": o.now()}).to_string());
    match o.wait_for_event("Approval", Some(Duration::from_millis(timeout_ms))) {
        Some(data) => {
            let by = input_value(&data);
            let by = by.get("by").cloned().unwrap_or(by);
            o.set_custom_status(&json!({"stage": "approved"}).to_string());
            let greeting = o.call_function("hello", &by.to_string())?;
            let greeting: Value = serde_json::from_str(&greeting).map_err(|e| e.to_string())?;
            Ok(json!({"approved": true, "by": by, "greeting": greeting}).to_string())
        }
        None => {
            o.set_custom_status(&json!({"stage": "timed out"}).to_string());
            Ok(json!({"approved": false, "reason": "no approval before the timeout"}).to_string())
        }
    }
}

wasmfc_guest::export_orchestrator!(run);
