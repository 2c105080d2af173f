//! Destination records: what an async invocation's `onSuccess` /
//! `onFailure` function receives (FC's destination record), bounded so
//! that destinations cannot grow or loop without end.
//!
//! Two bounds, both carried by the record itself:
//! - **size**: the record holds the request and the response payload; each
//!   is cut to its share of the async payload limit (FC's 128 KB), with a
//!   `…Truncated` flag, so a chain cannot double its payload at every hop;
//! - **hops**: `requestContext.wasmfcHops` counts the destinations a chain
//!   has passed through; a delivery past [`MAX_HOPS`] is refused (the
//!   task's `destinationStatus` says so). A destination that is the
//!   function itself is refused when the config is written.

use serde_json::{Value, json};

/// Destinations a chain of deliveries may pass through.
pub const MAX_HOPS: u64 = 8;

/// Room the record's own fields take besides the two payloads.
const RECORD_OVERHEAD: usize = 4 << 10;

/// What a destination record says of the invocation that produced it.
pub struct Outcome<'a> {
    pub request_id: &'a str,
    pub invocation_id: &'a str,
    pub function_arn: String,
    pub succeeded: bool,
    pub attempts: u32,
    /// The task's payload (itself a destination record for a chain).
    pub request_payload: &'a [u8],
    pub response_payload: String,
    /// FC's `functionError` (empty on success).
    pub error_type: &'a str,
}

/// Hops a record built from a task with `payload` has: one more than the
/// payload's own when the payload is a destination record.
pub fn hops_after(payload: &[u8]) -> u64 {
    let previous = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("requestContext")?.get("wasmfcHops")?.as_u64())
        .unwrap_or(0);
    previous + 1
}

/// Builds the record within `limit` bytes. `hops` comes from [`hops_after`].
pub fn record(outcome: &Outcome<'_>, hops: u64, limit: usize, now_ms: i64) -> Vec<u8> {
    let request = String::from_utf8_lossy(outcome.request_payload);
    let mut share = limit.saturating_sub(RECORD_OVERHEAD) / 2;
    loop {
        let (request_payload, request_cut) = cut(&request, share);
        let (response_payload, response_cut) = cut(&outcome.response_payload, share);
        let mut record = json!({
            "timestamp": now_ms,
            "requestContext": {
                "requestId": outcome.request_id,
                "invocationId": outcome.invocation_id,
                "functionArn": outcome.function_arn,
                "condition": if outcome.succeeded { "Success" } else { "RetriesExhausted" },
                "approximateInvokeCount": outcome.attempts,
                "wasmfcHops": hops,
            },
            "requestPayload": request_payload,
            "responseContext": { "statusCode": 200, "functionError": outcome.error_type },
            "responsePayload": response_payload,
        });
        if request_cut {
            record["requestPayloadTruncated"] = json!(true);
        }
        if response_cut {
            record["responsePayloadTruncated"] = json!(true);
        }
        let bytes = record.to_string().into_bytes();
        // Escaping can make a payload longer in JSON than in bytes
        // (control characters become `\u00XX`): shrink until it fits.
        if bytes.len() <= limit || share == 0 {
            return bytes;
        }
        share /= 2;
    }
}

/// `text` cut to at most `max` bytes on a character boundary; whether it
/// was cut.
fn cut(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome<'a>(payload: &'a [u8], response: &str) -> Outcome<'a> {
        Outcome {
            request_id: "r",
            invocation_id: "i",
            function_arn: "acs:fc:::services/s.LATEST/functions/f".into(),
            succeeded: true,
            attempts: 1,
            request_payload: payload,
            response_payload: response.into(),
            error_type: "",
        }
    }

    #[test]
    fn hops_count_up_along_a_chain() {
        assert_eq!(hops_after(b"plain event"), 1);
        let first = record(&outcome(b"event", "ok"), hops_after(b"event"), 128 << 10, 0);
        assert_eq!(hops_after(&first), 2);
        let second = record(&outcome(&first, "ok"), hops_after(&first), 128 << 10, 0);
        assert_eq!(hops_after(&second), 3);
    }

    #[test]
    fn a_record_stays_within_the_limit_and_says_what_it_cut() {
        let limit = 128 << 10;
        let big = "é".repeat(200_000);
        let payload = vec![0u8; 300_000]; // escaped as \u0000: 6x in JSON
        let bytes = record(&outcome(&payload, &big), 1, limit, 0);
        assert!(bytes.len() <= limit, "{} bytes", bytes.len());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["requestPayloadTruncated"], true);
        assert_eq!(v["responsePayloadTruncated"], true);
        // A small record is whole, without flags.
        let small: Value = serde_json::from_slice(&record(&outcome(b"in", "out"), 1, limit, 0)).unwrap();
        assert_eq!(small["requestPayload"], "in");
        assert_eq!(small["responsePayload"], "out");
        assert!(small.get("requestPayloadTruncated").is_none());
    }
}
