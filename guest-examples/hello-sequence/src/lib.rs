//! `hello-sequence`: the Durable Functions "function chaining" sample. Calls
//! the `hello` activity for Tokyo, Seattle and London, one after the other,
//! and returns the three greetings.
//!
//! Input (optional): `{"activities": ["hello", "greet", "hello"]}` names the
//! activity function for each city (the tests use it to make one step fail),
//! and `"attempts": n` retries each call up to n attempts in all (100 ms
//! apart, doubling).

use std::time::Duration;

use serde_json::Value;
use wasmfc_guest::orchestration::{Orchestration, retry};

const CITIES: [&str; 3] = ["Tokyo", "Seattle", "London"];

/// The input as a JSON value; a JSON string holding JSON (what the Python
/// Durable Functions client sends) is decoded once more.
fn input_value(input: &str) -> Value {
    match serde_json::from_str::<Value>(input) {
        Ok(Value::String(inner)) => serde_json::from_str(&inner).unwrap_or(Value::String(inner)),
        Ok(v) => v,
        Err(_) => Value::Null,
    }
}

fn run(o: &Orchestration, input: String) -> Result<String, String> {
    let input = input_value(&input);
    let mut greetings = Vec::new();
    for (i, city) in CITIES.iter().enumerate() {
        let function = input
            .get("activities")
            .and_then(|a| a.get(i))
            .and_then(Value::as_str)
            .unwrap_or("hello");
        let event = Value::from(*city).to_string();
        let out = match input.get("attempts").and_then(Value::as_u64) {
            Some(n) => o.call_function_with_retry(function, &event, retry(n as u32, Duration::from_millis(100)))?,
            None => o.call_function(function, &event)?,
        };
        let greeting: Value = serde_json::from_str(&out).map_err(|e| format!("{function} returned non-JSON: {e}"))?;
        greetings.push(greeting);
    }
    Ok(Value::Array(greetings).to_string())
}

wasmfc_guest::export_orchestrator!(run);
